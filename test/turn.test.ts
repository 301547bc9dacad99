/**
 * STUN/TURN hand-out: ephemeral TURN credentials in coturn's REST scheme, on the offer and on `webrtc.iceServers`;
 * and for real, through coturn on loopback (test/fixtures/coturn.ts): a client made to relay connects with the
 * credentials the server hands out, and one whose credentials the TURN server refuses is told so.
 */
import wrtc from '@roamhq/wrtc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient } from '../src/client/index.ts';
import { loadConfig } from '../src/config.ts';
import { iceServersFor, turnCredential } from '../src/peer/ice-servers.ts';
import { startCoturn } from './fixtures/coturn.ts';
import { startServer, until } from './fixtures/server.ts';

const test = suite('turn');
const SECRET = 'north-wind-secret';
const TURN = { turnUrls: ['turn:127.0.0.1:3478?transport=udp'], turnSecret: SECRET };

test('the credential is base64(HMAC-SHA1(secret, username)), as coturn computes it', () => {
  // Worked out with openssl: printf '1700003600:tab-1' | openssl dgst -sha1 -hmac north-wind-secret -binary | base64
  assert.is(turnCredential(SECRET, '1700003600:tab-1'), 'sxrF/lBZySIWn6iccgWqMk4qP+U=');
});

test('TURN servers get a username "<expiry>:<user>" valid for the TTL; configured servers come first, unchanged', () => {
  const config = loadConfig({}, { ...TURN, turnTtlS: 3600, iceServers: [{ urls: 'stun:stun.example.org' }] });
  const { iceServers, expiresAt } = iceServersFor(config, 'tab-1', 1_700_000_000_000);
  assert.equal(iceServers, [
    { urls: 'stun:stun.example.org' },
    { urls: TURN.turnUrls, username: '1700003600:tab-1', credential: 'sxrF/lBZySIWn6iccgWqMk4qP+U=' },
  ]);
  assert.equal(expiresAt, new Date(1_700_003_600_000));
  assert.is(iceServersFor(config, 'a:b').iceServers[1].username?.split(':').length, 2, 'a colon in the user cannot forge the expiry');
});

test('settings are checked at start: TURN URLs need the secret, and must be turn: or turns: URLs', () => {
  assert.throws(() => loadConfig({ TABAGENT_TURN_URLS: 'turn:127.0.0.1:3478' }), /TABAGENT_TURN_SECRET/);
  assert.throws(() => loadConfig({ TABAGENT_TURN_URLS: 'http://127.0.0.1', TABAGENT_TURN_SECRET: SECRET }), /TABAGENT_TURN_URLS/);
  assert.throws(() => loadConfig({ TABAGENT_TURN_URLS: 'turn:127.0.0.1', TABAGENT_TURN_SECRET: 'short' }), /TABAGENT_TURN_SECRET/);
  assert.equal(loadConfig({ TABAGENT_TURN_URLS: 'turn:a:3478, turns:b:5349', TABAGENT_TURN_SECRET: SECRET }).turnUrls, ['turn:a:3478', 'turns:b:5349']);
});

test('webrtc.offer and webrtc.iceServers hand them out per client, and a client given them still connects', async () => {
  const server = await startServer(TURN);
  try {
    const api = createSignalingClient({ url: server.url });
    const listed = await api.webrtc.iceServers.query({ clientId: 'tab-9' });
    const [turn] = listed.iceServers;
    assert.ok(turn.username?.endsWith(':tab-9'), turn.username);
    assert.is(turn.credential, turnCredential(SECRET, turn.username!));
    assert.ok(listed.expiresAt instanceof Date && listed.expiresAt.getTime() > Date.now());

    // The offer's servers are what the client's peer uses by default; TURN is unreachable here, host candidates do.
    const client = await server.client({ clientId: 'tab-10' });
    const offered = await api.webrtc.offer.mutate({ clientId: 'tab-10' });
    assert.ok(offered.iceServers[0].username?.endsWith(':tab-10'));
    assert.is((await client.health()).status, 'ok');
  } finally {
    await server.close();
  }
});

/** A peer that uses relayed paths only (`iceTransportPolicy: 'relay'`): it connects through TURN or not at all. */
class RelayOnlyPeerConnection extends wrtc.RTCPeerConnection {
  constructor(config: RTCConfiguration) {
    super({ ...config, iceTransportPolicy: 'relay' });
  }
}

/** The candidate types of the connection's chosen pair, from getStats. */
async function chosenPath(pc: RTCPeerConnection): Promise<{ local?: string; remote?: string }> {
  const stats = await pc.getStats();
  const byId = new Map<string, { type: string; candidateType?: string; state?: string; nominated?: boolean; localCandidateId?: string; remoteCandidateId?: string }>();
  stats.forEach((entry) => byId.set(entry.id, entry));
  const pair = [...byId.values()].find((entry) => entry.type === 'candidate-pair' && entry.state === 'succeeded');
  return { local: byId.get(pair?.localCandidateId ?? '')?.candidateType, remote: byId.get(pair?.remoteCandidateId ?? '')?.candidateType };
}

test('through a real TURN server: a client that may only relay connects with the credentials the server hands out', async () => {
  const turnSecret = 'coturn-shared-secret-0123';
  const coturn = await startCoturn(turnSecret);
  const server = await startServer({ turnUrls: [coturn.url], turnSecret });
  try {
    const client = await server.client({ RTCPeerConnection: RelayOnlyPeerConnection as typeof RTCPeerConnection, timeoutMs: 10_000 });
    assert.is((await client.health()).status, 'ok');
    assert.is((await client.echo({ data: 'through the relay' })).data, 'through the relay');
    assert.is((await chosenPath(client.pc)).local, 'relay', 'the client\'s end of the path is its relayed address');
  } finally {
    await server.close();
    await coturn.close();
  }
});

test('through a real TURN server: credentials made with the wrong secret are refused, and the client says so', async () => {
  const coturn = await startCoturn('coturn-shared-secret-0123');
  const server = await startServer({ turnUrls: [coturn.url], turnSecret: 'not-the-turn-servers-secret' });
  try {
    const failure = await server
      .client({ RTCPeerConnection: RelayOnlyPeerConnection as typeof RTCPeerConnection, timeoutMs: 5_000 })
      .then(() => undefined, (error: Error & { code?: string }) => error);
    assert.ok(failure, 'the client did not connect');
    assert.is(failure.code, 'unauthorized');
    assert.match(failure.message, `TURN server ${coturn.url} refused the credentials (401`);
    assert.match(failure.message, 'TABAGENT_TURN_SECRET');
    await until(() => server.app.sessions.size === 0, 'the session it opened to be closed');
  } finally {
    await server.close();
    await coturn.close();
  }
});

test.run();
