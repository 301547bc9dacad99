/** STUN/TURN hand-out: ephemeral TURN credentials in coturn's REST scheme, on the offer and on `webrtc.iceServers`. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient } from '../src/client/index.ts';
import { loadConfig } from '../src/config.ts';
import { iceServersFor, turnCredential } from '../src/peer/ice-servers.ts';
import { startServer } from './fixtures/server.ts';

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

test.run();
