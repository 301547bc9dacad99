/**
 * With TABAGENT_PEER_PROCESSES=1 the server's peers live in a peer process, so a native crash in wrtc costs a
 * resume, not the server. These tests crash that process for real (SIGSEGV, as wrtc does) and check that nothing
 * is lost; and the wire codec.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Chunk } from '../src/client/index.ts';
import { encodeMessage, MessageReader } from '../src/peer/process/wire.ts';
import { alive } from './fixtures/dev-server.ts';
import { fakeInference } from './fixtures/engine.ts';
import { FrameInbox, rawPeer } from './fixtures/raw-peer.ts';
import { FetchEventSource } from './fixtures/sse.ts';
import { startServer, until } from './fixtures/server.ts';

const test = suite('peer process');
/** The server's peers run in its own process by default: these tests are about the peer process, so they ask for one. */
const IN_PEER_PROCESS = { peerProcesses: 1 };
const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

test('the wire: messages survive any cut of the byte stream, payloads byte for byte', () => {
  const messages = [
    { header: { op: 'send', channel: 1, binary: true }, payload: Uint8Array.from({ length: 70_000 }, (_, i) => i % 251) },
    { header: { ev: 'open', channel: -3 } },
    { header: { ev: 'message', channel: 2, binary: false }, payload: new TextEncoder().encode('héllo ✓') },
  ];
  const stream = Buffer.concat(messages.flatMap(({ header, payload }) => encodeMessage(header, payload)));
  for (const cut of [1, 7, 8, 9, 100, 4096, stream.length]) {
    const reader = new MessageReader();
    const got = [];
    for (let at = 0; at < stream.length; at += cut) got.push(...reader.push(stream.subarray(at, at + cut)));
    assert.equal(got.map((m) => m.header), messages.map((m) => m.header), `cut every ${cut} bytes: headers`);
    got.forEach((m, i) => assert.equal(m.payload && [...m.payload], messages[i].payload && [...messages[i].payload], `cut every ${cut}: payload ${i}`));
  }
});

test('a peer process that crashes mid-stream is replaced; the stream resumes with every chunk once, and other sessions carry on', async () => {
  const server = await startServer(IN_PEER_PROCESS, { engines: fakeInference({ tokenDelayMs: 40 }) });
  try {
    const pool = server.app.peerProcesses!;
    const client = await server.client({ reconnect: { initialDelayMs: 20, maxDelayMs: 200, disconnectedMs: 0 } });
    const { sessionId } = client;
    const [crashed] = pool.processes;
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(120) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 5) process.kill(crashed.pid!, 'SIGSEGV');
    }
    const answer = await stream.result;

    assert.equal(chunks.map((c) => c.index), [...Array(120).keys()], 'each chunk once, in order');
    assert.is(answer.response, words(120));
    assert.is(client.sessionId, sessionId, 'the same session, resumed');
    assert.is(pool.crashes, 1);
    assert.is.not(pool.processes[0].pid, crashed.pid, 'a new process holds the peer');

    const other = await server.client();
    assert.is((await other.health()).status, 'ok', 'a new session is served');
    assert.is((await client.echo({ data: 'after' })).data, 'after', 'the resumed one too');
  } finally {
    await server.close();
  }
});

test('a client that follows webrtc.events reconnects as soon as the server reports the crash, before ICE notices', async () => {
  const server = await startServer(IN_PEER_PROCESS, { engines: fakeInference({ tokenDelayMs: 40 }) });
  try {
    const client = await server.client({
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      EventSource: FetchEventSource as unknown as typeof EventSource,
    });
    const [crashed] = server.app.peerProcesses!.processes;
    const old = client.pc;
    const peerStateAtReconnect: string[] = [];
    client.on('connection', (state) => state === 'reconnecting' && peerStateAtReconnect.push(old.connectionState));
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(60) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 3) process.kill(crashed.pid!, 'SIGSEGV');
    }
    assert.is((await stream.result).response, words(60));
    assert.equal(chunks.map((c) => c.index), [...Array(60).keys()], 'each chunk once, in order');
    assert.equal(peerStateAtReconnect, ['connected'], 'the server\'s report came first: this side\'s ICE still read connected');
  } finally {
    await server.close();
  }
});

test('backpressure holds through the pipe: 32 MiB each way arrive whole (libwebrtc closes a channel that queues 16 MiB)', async () => {
  const server = await startServer(IN_PEER_PROCESS);
  try {
    const client = await server.client();
    const payload = Uint8Array.from({ length: 32 * 1024 * 1024 }, (_, i) => (i * 7) % 256);
    const { attachment } = await client.call('echo', {}, { attachment: payload });
    assert.is(attachment?.length, payload.length);
    assert.ok(attachment!.every((byte, i) => byte === payload[i]), 'byte for byte');
    assert.ok(client.open, 'the channel stayed open');
  } finally {
    await server.close();
  }
});

test('the peer process lets go of closed peers and their channels, client-opened ones included', async () => {
  const server = await startServer({ ...IN_PEER_PROCESS, resumeGraceMs: 0 });
  try {
    for (let i = 0; i < 3; i++) {
      const client = await server.client();
      client.pc.createDataChannel('extra');
      assert.is((await client.health()).status, 'ok');
      await client.close();
    }
    await until(() => server.app.sessions.size === 0, 'the sessions to end');
    const [held] = server.app.peerProcesses!.processes;
    await until(() => server.app.peerProcesses!.processes[0].channels === 0, `the channels to go (${JSON.stringify(held)})`);
    assert.is(server.app.peerProcesses!.processes[0].peers, 0);
  } finally {
    await server.close();
  }
});

test('shutdown ends the peer processes with the server', async () => {
  const server = await startServer(IN_PEER_PROCESS);
  const pool = server.app.peerProcesses!;
  const client = await server.client();
  await client.health();
  const pids = pool.processes.map((p) => p.pid!);
  await server.close();
  assert.equal(pool.processes, []);
  await until(() => pids.every((pid) => !alive(pid)), 'the peer processes to exit');
  assert.is(pool.crashes, 0, 'an orderly exit is not a crash');
});

/** Offers over REST, answered by a bare wrtc peer: an offer whose making fails shows as its status. */
async function offerAndConnect(url: string): Promise<{ status: number; body: Record<string, unknown>; health?: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/webrtc/offer`, { method: 'POST', body: '{}' });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) return { status: response.status, body };
  const peer = rawPeer();
  try {
    const answerSdp = await peer.answer(body.offerSdp as string);
    await fetch(`${url}/v1/webrtc/answer/${body.sessionId}`, { method: 'POST', body: JSON.stringify({ answerSdp }) });
    const inbox = new FrameInbox(await peer.channel('tabagent'));
    const health = await inbox.exchange(JSON.stringify({ action: 'health', request_id: 'h' }), (f) => f.request_id === 'h');
    return { status: response.status, body, health };
  } finally {
    peer.close();
  }
}

test('an offer whose peer process dies while it is made is made again on a live one: 200, and it connects', async () => {
  const server = await startServer(IN_PEER_PROCESS);
  try {
    const pool = server.app.peerProcesses!;
    const [doomed] = pool.processes;
    // Stopped, it holds the offer's peer without answering: the offer is in flight there when it dies.
    process.kill(doomed.pid!, 'SIGSTOP');
    const offered = offerAndConnect(server.url);
    await until(() => pool.processes[0].peers === 1, 'the offer\'s peer to be made in the stopped process');
    process.kill(doomed.pid!, 'SIGKILL');
    const { status, body, health } = await offered;
    assert.is(status, 200, JSON.stringify(body));
    assert.is(health?.status, 'ok', 'the session made on the new process serves');
    assert.is.not(pool.processes[0].pid, doomed.pid);
  } finally {
    await server.close();
  }
});

test('a peer process that stops answering is killed and replaced: its session resumes, a new offer is served', async () => {
  const server = await startServer({ ...IN_PEER_PROCESS, peerHeartbeatTimeoutMs: 1_000 }, { engines: fakeInference({ tokenDelayMs: 40 }) });
  try {
    const pool = server.app.peerProcesses!;
    const client = await server.client({ reconnect: { initialDelayMs: 20, maxDelayMs: 200, disconnectedMs: 0 } });
    const [hung] = pool.processes;
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(60) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 3) process.kill(hung.pid!, 'SIGSTOP');
    }
    assert.is((await stream.result).response, words(60), 'the stream finished, resumed on the new process');
    assert.equal(chunks.map((c) => c.index), [...Array(60).keys()], 'each chunk once, in order');
    assert.not.ok(alive(hung.pid!), 'the hung process was killed');
    assert.is(pool.crashes, 1);
    const { status, health } = await offerAndConnect(server.url);
    assert.is(status, 200);
    assert.is(health?.status, 'ok');
  } finally {
    await server.close();
  }
});

test.run();
