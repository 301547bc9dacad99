/**
 * The server's peers on node-datachannel (TABAGENT_PEER_BACKEND=node-datachannel): the behaviours users rely on,
 * with real peers on both sides: wrtc clients (libwebrtc, as Chrome) and node-datachannel's own polyfill, against
 * the peer process and against peers in the server's process.
 */
import { RTCPeerConnection as PolyfillPeerConnection } from 'node-datachannel/polyfill';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient, type Chunk } from '../src/client/index.ts';
import { loadConfig, type ConfigInput } from '../src/config.ts';
import { DatachannelPeerConnection } from '../src/peer/node-datachannel/peer-connection.ts';
import { nativeConfig } from '../src/peer/node-datachannel/rtc-config.ts';
import { PeerProcessPool } from '../src/peer/process/pool.ts';
import { fakeInference } from './fixtures/engine.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const BACKEND = { peerBackend: 'node-datachannel' } as const;
const MiB = 1024 * 1024;
const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
/** node-datachannel's W3C polyfill as a client: both ends libdatachannel. */
const polyfillClient = { RTCPeerConnection: PolyfillPeerConnection as unknown as typeof RTCPeerConnection };

async function withServer(overrides: ConfigInput, run: (server: TestServer) => Promise<void>, engines = fakeInference()): Promise<void> {
  const server = await startServer({ ...BACKEND, ...overrides }, { engines });
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

const connect = suite('node-datachannel: connect and answer');

for (const peerProcesses of [1, 0]) {
  const where = peerProcesses ? 'in the peer process' : 'in the server';
  connect(`peers ${where}: a wrtc client connects, gets answers, and streams a chat chunk by chunk`, () =>
    withServer({ peerProcesses }, async (server) => {
      const client = await server.client();
      assert.is((await client.health()).status, 'ok');
      assert.is((await client.echo({ data: 'héllo ✓' })).data, 'héllo ✓');
      const chunks: Chunk[] = [];
      const stream = client.stream('chat', { messages: [{ role: 'user', content: words(40) }] });
      for await (const chunk of stream) chunks.push(chunk);
      assert.equal(chunks.map((c) => c.index), [...Array(40).keys()], 'each chunk once, in order');
      assert.is((await stream.result).response, words(40));
      assert.is(server.app.peerProcesses?.options.backend, peerProcesses ? 'node-datachannel' : undefined);
    }));
}

connect('a node-datachannel client (its polyfill) connects too: both ends libdatachannel', () =>
  withServer({}, async (server) => {
    const client = await server.client(polyfillClient);
    assert.is((await client.health()).status, 'ok');
    const payload = Uint8Array.from({ length: 3 * MiB }, (_, i) => (i * 13) % 256);
    const { attachment } = await client.call('echo', {}, { attachment: payload });
    assert.equal(attachment, payload, 'a fragmented attachment, byte for byte');
  }));

connect('the server\'s candidates are W3C lines (candidate:, sdpMid, sdpMLineIndex), as Chrome and wrtc take them', () =>
  withServer({}, async (server) => {
    const api = createSignalingClient({ url: server.url });
    const { offerSdp } = await api.webrtc.offer.mutate({});
    assert.match(offerSdp, /\r\na=candidate:\S+ 1 UDP /, 'a client that does not trickle finds them in the offer');
    const client = await server.client();
    const [candidate] = server.app.sessions.get(client.sessionId).events.candidates();
    assert.ok(candidate, 'candidates trickle to webrtc.events too');
    assert.match(candidate.candidate!, /^candidate:/);
    assert.is(candidate.sdpMid, '0');
    assert.is(candidate.sdpMLineIndex, 0);
  }));

connect('a trickling client learns the server\'s candidates only with its answer: one that beats the answer fails DTLS on libdatachannel 0.24.5', () =>
  withServer({}, async (server) => {
    const api = createSignalingClient({ url: server.url });
    const { offerSdp } = await api.webrtc.offer.mutate({ trickle: true });
    assert.not.match(offerSdp, /a=candidate:/);
    for (let i = 0; i < 20; i++) {
      const client = await server.client({ timeoutMs: 5_000 });
      assert.is((await client.health()).status, 'ok', `connection ${i}`);
      await client.close();
    }
  }));

const bulk = suite('node-datachannel: 64 MiB');

bulk('a 64 MiB attachment goes up and comes back whole, fragmented both ways through the peer process', () =>
  withServer({}, async (server) => {
    const client = await server.client();
    const payload = Uint8Array.from({ length: 64 * MiB - 4096 }, (_, i) => (i * 7) % 256);
    const { attachment } = await client.call('echo', {}, { attachment: payload });
    assert.is(attachment?.length, payload.length);
    assert.ok(attachment!.every((byte, i) => byte === payload[i]), 'byte for byte');
    assert.ok(client.open, 'the channel stayed open');
  }));

const abrupt = suite('node-datachannel: abrupt closes');

for (const peerProcesses of [1, 0]) {
  const where = peerProcesses ? 'in the peer process' : 'in the server';
  abrupt(`peers ${where}: clients that close their peer mid-stream leave nothing behind, and the server serves on`, () =>
    withServer({ peerProcesses, resumeGraceMs: 0 }, async (server) => {
      for (let cycle = 0; cycle < 8; cycle++) {
        const client = await server.client();
        // A token a millisecond for seconds: the server is sending when the close reaches it.
        const stream = client.stream('chat', { messages: [{ role: 'user', content: words(3_000) }] });
        let received = 0;
        // The cut stream fails on the client, or ends with what had already arrived: either is fine here.
        await (async () => {
          for await (const _ of stream) if (++received === 50) client.pc.close();
        })().catch(() => {});
        await client.close();
      }
      await until(() => server.app.sessions.size === 0 && server.app.dispatcher.inFlightCount === 0, 'the sessions and their requests to end');
      assert.is(server.app.peers.open, 0, 'every server peer closed');
      const pool = server.app.peerProcesses;
      if (pool) {
        assert.is(pool.crashes, 0, 'the peer process lived through it');
        await until(() => pool.processes[0].channels === 0 && pool.processes[0].peers === 0, 'the peer process to let go');
      }
      const next = await server.client();
      assert.is((await next.health()).status, 'ok', 'a new session is served');
    }, fakeInference({ tokenDelayMs: 1 })));
}

const resume = suite('node-datachannel: resume');

resume('a peer process that crashes mid-stream is replaced on the same backend; the stream resumes, every chunk once', () =>
  withServer({ peerProcesses: 1 }, async (server) => {
    const pool = server.app.peerProcesses!;
    const client = await server.client({ reconnect: { initialDelayMs: 20, maxDelayMs: 200, disconnectedMs: 0 } });
    const { sessionId } = client;
    const [crashed] = pool.processes;
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(80) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 5) process.kill(crashed.pid!, 'SIGSEGV');
    }
    assert.equal(chunks.map((c) => c.index), [...Array(80).keys()], 'each chunk once, in order');
    assert.is((await stream.result).response, words(80));
    assert.is(client.sessionId, sessionId, 'the same session, resumed');
    assert.is(pool.crashes, 1);
    assert.is.not(pool.processes[0].pid, crashed.pid, 'a new process holds the peer');
    assert.is((await client.echo({ data: 'after' })).data, 'after');
  }, fakeInference({ tokenDelayMs: 30 })));

resume('peers in the server: a peer the server loses mid-stream is replaced on resume, every chunk once', () =>
  withServer({ peerProcesses: 0 }, async (server) => {
    const client = await server.client({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(30) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 5) server.app.sessions.get(client.sessionId).lose('peer connection failed');
    }
    assert.equal(chunks.map((c) => c.index), [...Array(30).keys()], 'each chunk once, in order');
    assert.is(server.app.sessions.get(client.sessionId).info().counts.resumes, 1);
  }, fakeInference({ tokenDelayMs: 25 })));

const setup = suite('node-datachannel: settings');

setup('TABAGENT_PEER_BACKEND picks the backend; anything else stops the start, naming the variable', () => {
  assert.is(loadConfig({}).peerBackend, 'wrtc', 'wrtc by default');
  assert.is(loadConfig({ TABAGENT_PEER_BACKEND: 'node-datachannel' }).peerBackend, 'node-datachannel');
  assert.throws(() => loadConfig({ TABAGENT_PEER_BACKEND: 'libwebrtc' }), /TABAGENT_PEER_BACKEND/);
});

setup('a peer process that cannot load its backend stops the start with the reason, and is not restarted as a crash', async () => {
  const pool = new PeerProcessPool(1, { backend: 'no-such-backend' as never, heartbeatTimeoutMs: 10_000 });
  try {
    const error = await pool.start().then(() => undefined, (failure: Error) => failure);
    assert.match(error?.message ?? 'started', /no-such-backend/);
    await until(() => pool.processes.length === 0, 'the failed process to be forgotten');
    assert.is(pool.crashes, 0);
  } finally {
    await pool.close();
  }
});

setup('closing a connection closes each of its channels, with one close event each (the peer process frees a channel on it)', async () => {
  const pc = new DatachannelPeerConnection({ iceServers: [] });
  const channels = [pc.createDataChannel('a'), pc.createDataChannel('b')];
  await pc.setLocalDescription(await pc.createOffer());
  const closes = channels.map(() => 0);
  channels.forEach((channel, i) => (channel.onclose = () => closes[i]++));
  pc.close();
  await until(() => closes.every((n) => n > 0), 'a close event on every channel');
  await new Promise((resolve) => setTimeout(resolve, 50)); // any later callback from libdatachannel
  assert.equal(closes, [1, 1], 'once each');
  assert.equal(channels.map((c) => c.readyState), ['closed', 'closed']);
  assert.throws(() => channels[0].send('late'), (error: Error) => error.name === 'InvalidStateError');
  assert.is(pc.connectionState, 'closed');
});

setup('TURN servers reach libdatachannel as objects: a username with a colon (ours are "<expiry>:<user>") intact', () => {
  const { iceServers } = nativeConfig({
    iceServers: [
      { urls: ['stun:stun.example.org', 'turns:[::1]:5349'], username: '1700003600:tab-1', credential: 'a/b+c=' },
      { urls: 'turn:127.0.0.1?transport=tcp', username: 'u:v', credential: 'p' },
    ],
  });
  assert.equal(iceServers, [
    'stun:stun.example.org:3478',
    { hostname: '::1', port: 5349, username: '1700003600:tab-1', password: 'a/b+c=', relayType: 'TurnTls' },
    { hostname: '127.0.0.1', port: 3478, username: 'u:v', password: 'p', relayType: 'TurnTcp' },
  ]);
  assert.throws(() => nativeConfig({ iceServers: [{ urls: 'http://example.org' }] }), /http:\/\/example.org/);
});

setup('with TURN handed out (unreachable here), a node-datachannel server still connects over host candidates', () =>
  withServer({ turnUrls: ['turn:127.0.0.1:3478?transport=udp'], turnSecret: 'north-wind-secret' }, async (server) => {
    const client = await server.client();
    assert.is((await client.health()).status, 'ok');
  }));

connect.run();
bulk.run();
abrupt.run();
resume.run();
setup.run();
