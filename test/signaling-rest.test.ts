import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConfigInput } from '../src/config.ts';
import { FrameInbox, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const test = suite('signaling over REST');

const EXTENSION = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';

/**
 * How the body goes out. `browser`: a string body, as the seed's `fetch(url, { body: JSON.stringify(...) })`
 * sends it (fetch labels it `text/plain;charset=UTF-8`); `none`: bytes, so no Content-Type header at all;
 * `text/plain`: a string with an explicit `content-type: text/plain`.
 */
type BodyMode = 'browser' | 'none' | 'text/plain';

interface Ctx {
  server: TestServer;
  url: string;
  peer(): RawPeer;
  /** A request to the server; `body` is JSON-encoded as `mode` says, or sent as is when already a string. */
  call(method: string, path: string, body?: unknown, options?: { mode?: BodyMode; headers?: Record<string, string> }): Promise<Response>;
}

async function withServer(body: (ctx: Ctx) => Promise<void>, overrides: ConfigInput = {}): Promise<void> {
  const server = await startServer({ maxSessionsPerIp: 100, ...overrides });
  const peers: RawPeer[] = [];
  try {
    await body({
      server,
      url: server.url,
      peer: () => {
        const peer = rawPeer();
        peers.push(peer);
        return peer;
      },
      call(method, path, payload, { mode = 'browser', headers = {} } = {}) {
        const init: RequestInit = { method, headers: { ...headers } };
        if (payload !== undefined) {
          const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
          if (mode === 'none') init.body = new TextEncoder().encode(text);
          else init.body = text;
          if (mode === 'text/plain') (init.headers as Record<string, string>)['content-type'] = 'text/plain';
        }
        return fetch(`${server.url}${path}`, init);
      },
    });
  } finally {
    await server.close(); // before the peers: see test/fixtures/server.ts
    for (const peer of peers) peer.close();
  }
}

/** Asserts a REST error: the status and `{ error: { code, message, details? } }` as JSON. */
async function expectError(response: Response, status: number, code: string, what: string) {
  const text = await response.text();
  assert.is(response.status, status, `${what}: status (body ${text.slice(0, 300)})`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `${what}: JSON`);
  const body = JSON.parse(text) as { error: { code: string; message: string; details?: { field?: string } } };
  assert.is(body.error.code, code, `${what}: code`);
  assert.type(body.error.message, 'string');
  assert.ok(body.error.message.length > 0, `${what}: a message`);
  return body.error;
}

async function ok<T = Record<string, unknown>>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  assert.is(response.status, 200, `${what}: status (body ${text.slice(0, 300)})`);
  return JSON.parse(text) as T;
}

interface Offer {
  sessionId: string;
  offerSdp: string;
  iceServers: unknown[];
  expiresAt: string;
}

async function health(channel: RTCDataChannel, requestId: string) {
  return new FrameInbox(channel).exchange(JSON.stringify({ action: 'health', request_id: requestId }), (f) => f.request_id === requestId);
}

test('the seed browser flow connects a hand-driven peer: offer, answer, ice, health, session, delete', () =>
  withServer(async ({ call, peer: newPeer }) => {
    const peer = newPeer();
    const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', { clientId: 'seed' }, { mode: 'none' }), 'offer');
    assert.type(offer.sessionId, 'string');
    assert.ok(offer.sessionId.length >= 22);
    assert.match(offer.offerSdp, /a=candidate:/);
    assert.equal(offer.iceServers, []);
    assert.ok(!Number.isNaN(Date.parse(offer.expiresAt)), 'expiresAt is an ISO date');
    const { sessionId } = offer;

    const answerSdp = await peer.answer(offer.offerSdp);
    const answered = await ok<{ success: boolean }>(await call('POST', `/v1/webrtc/answer/${sessionId}`, { answerSdp }), 'answer');
    assert.is(answered.success, true);

    await peer.gathered;
    for (const [i, candidate] of peer.candidates.entries()) {
      const mode: BodyMode = i % 2 ? 'text/plain' : 'none';
      assert.equal(await ok(await call('POST', `/v1/webrtc/ice/${sessionId}`, { candidate: candidate.toJSON() }, { mode }), 'ice'), {
        success: true,
      });
    }
    assert.equal(await ok(await call('POST', `/v1/webrtc/ice/${sessionId}`, { candidate: null }), 'end of candidates'), { success: true });

    const channel = await peer.channel('tabagent');
    const answer = await health(channel, 'rest-1');
    assert.is(answer.type, 'health');
    assert.is(answer.status, 'ok');

    const info = await ok<{ id: string; clientId: string; state: string; counts: Record<string, number> }>(
      await call('GET', `/v1/webrtc/session/${sessionId}`),
      'session',
    );
    assert.is(info.id, sessionId);
    assert.is(info.clientId, 'seed');
    assert.is(info.state, 'connected');
    assert.is(info.counts.requests, 1);
    assert.ok(info.counts.iceCandidates >= 1, 'the trickled candidates were applied');

    assert.equal(await ok(await call('DELETE', `/v1/webrtc/session/${sessionId}`), 'delete'), { success: true });
    await expectError(await call('GET', `/v1/webrtc/session/${sessionId}`), 404, 'not_found', 'session after delete');
    await until(() => channel.readyState === 'closed', 'the server to close the channel');
  }),
);

test('TabAgent snake_case forms: POST /v1/webrtc/answer { session_id, sdp } and /v1/webrtc/ice { session_id, candidate }', () =>
  withServer(async ({ call, peer: newPeer }) => {
    const peer = newPeer();
    const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', {}, { mode: 'text/plain' }), 'offer');
    const sdp = await peer.answer(offer.offerSdp);
    const answered = await ok<{ success: boolean }>(await call('POST', '/v1/webrtc/answer', { session_id: offer.sessionId, sdp }), 'answer');
    assert.is(answered.success, true);
    await peer.gathered;
    for (const candidate of peer.candidates) {
      const body = { session_id: offer.sessionId, candidate: candidate.candidate };
      assert.equal(await ok(await call('POST', '/v1/webrtc/ice', body, { mode: 'none' }), 'ice'), { success: true });
    }
    assert.is((await health(await peer.channel(), 'snake')).status, 'ok');
    const info = await ok<{ counts: { iceCandidates: number } }>(await call('GET', `/v1/webrtc/session/${offer.sessionId}`), 'session');
    assert.ok(info.counts.iceCandidates >= 1);
  }),
);

test('an offer with an empty body, or no body, works', () =>
  withServer(async ({ call }) => {
    for (const [what, body] of [['no body', undefined], ['empty body', ''], ['blank body', '  ']] as const) {
      const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', body), what);
      assert.ok(offer.sessionId, what);
      await ok(await call('DELETE', `/v1/webrtc/session/${offer.sessionId}`), `${what}: delete`);
    }
  }),
);

test('bad bodies are 400 with a JSON error: invalid_json, a JSON array, a missing or mistyped answerSdp', () =>
  withServer(async ({ call }) => {
    const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', {}), 'offer');
    const id = offer.sessionId;
    for (const mode of ['browser', 'none', 'text/plain'] as const) {
      await expectError(await call('POST', `/v1/webrtc/answer/${id}`, '{"answerSdp":', { mode }), 400, 'invalid_json', `truncated JSON (${mode})`);
      await expectError(await call('POST', '/v1/webrtc/offer', '[1,2]', { mode }), 400, 'invalid_request', `array body (${mode})`);
    }
    await expectError(await call('POST', `/v1/webrtc/ice/${id}`, '"candidate:1"'), 400, 'invalid_request', 'string body');
    await expectError(await call('POST', `/v1/webrtc/ice/${id}`, 'null'), 400, 'invalid_request', 'null body');

    let error = await expectError(await call('POST', `/v1/webrtc/answer/${id}`, {}), 400, 'invalid_request', 'missing answerSdp');
    assert.is(error.details?.field, 'answerSdp');
    assert.match(error.message, /answerSdp/);
    error = await expectError(await call('POST', `/v1/webrtc/answer/${id}`, { answerSdp: 42 }), 400, 'invalid_request', 'numeric answerSdp');
    assert.is(error.details?.field, 'answerSdp');
    error = await expectError(await call('POST', '/v1/webrtc/answer', { sdp: 'v=0' }), 400, 'invalid_request', 'no session id');
    assert.is(error.details?.field, 'sessionId');
    error = await expectError(await call('POST', '/v1/webrtc/offer', { clientId: 7 }), 400, 'invalid_request', 'numeric clientId');
    assert.is(error.details?.field, 'clientId');
    error = await expectError(await call('POST', `/v1/webrtc/ice/${id}`, { candidate: 'hello' }), 400, 'invalid_request', 'not a candidate line');
    assert.is(error.details?.field, 'candidate');
    error = await expectError(await call('POST', `/v1/webrtc/answer/${id}`, { answerSdp: 'garbage' }), 400, 'invalid_request', 'garbage SDP');
    assert.is(error.details?.field, 'answerSdp');

    // None of that harmed the session.
    const info = await ok<{ state: string }>(await call('GET', `/v1/webrtc/session/${id}`), 'session');
    assert.is(info.state, 'waiting_for_answer');
  }),
);

test('an unknown session is 404 not_found on every route and a replayed answer is 409 conflict', () =>
  withServer(async ({ call, peer: newPeer }) => {
    const unknown = 'C'.repeat(24);
    await expectError(await call('POST', `/v1/webrtc/answer/${unknown}`, { answerSdp: 'v=0' }), 404, 'not_found', 'answer');
    await expectError(await call('POST', `/v1/webrtc/ice/${unknown}`, { candidate: null }), 404, 'not_found', 'ice');
    await expectError(await call('POST', '/v1/webrtc/ice', { session_id: unknown, candidate: null }), 404, 'not_found', 'snake ice');
    await expectError(await call('GET', `/v1/webrtc/session/${unknown}`), 404, 'not_found', 'session');
    await expectError(await call('DELETE', `/v1/webrtc/session/${unknown}`), 404, 'not_found', 'delete');

    const peer = newPeer();
    const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', {}), 'offer');
    const answerSdp = await peer.answer(offer.offerSdp);
    await ok(await call('POST', `/v1/webrtc/answer/${offer.sessionId}`, { answerSdp }), 'answer');
    await expectError(await call('POST', `/v1/webrtc/answer/${offer.sessionId}`, { answerSdp }), 409, 'conflict', 'replayed answer');
    await expectError(
      await call('POST', '/v1/webrtc/answer', { session_id: offer.sessionId, sdp: answerSdp }),
      409,
      'conflict',
      'replayed snake answer',
    );
  }),
);

test('a session id with malformed percent-encoding is a 4xx JSON error, not a server error', () =>
  withServer(async ({ call }) => {
    const response = await call('GET', '/v1/webrtc/session/%E0%A4%A');
    const text = await response.text();
    assert.ok(response.status >= 400 && response.status < 500, `status ${response.status} (body ${text.slice(0, 200)})`);
    const body = JSON.parse(text) as { error: { code: string } };
    assert.ok(['invalid_request', 'not_found'].includes(body.error.code), `code ${body.error.code}`);
  }),
);

test('a body over maxBodyBytes is 413 payload_too_large, declared or streamed', () =>
  withServer(
    async ({ call, url }) => {
      const big = { clientId: 'x', padding: 'p'.repeat(4096) };
      await expectError(await call('POST', '/v1/webrtc/offer', big), 413, 'payload_too_large', 'declared 4 KiB');
      await expectError(await call('POST', '/v1/webrtc/answer/abc', big, { mode: 'none' }), 413, 'payload_too_large', 'declared, no type');
      // Chunked, so no Content-Length: the limit holds while reading.
      const bytes = new TextEncoder().encode(JSON.stringify(big));
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let at = 0; at < bytes.length; at += 512) controller.enqueue(bytes.subarray(at, at + 512));
          controller.close();
        },
      });
      const response = await fetch(`${url}/v1/webrtc/offer`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
      await expectError(response, 413, 'payload_too_large', 'streamed 4 KiB');
      // A body under the limit still works.
      const offer = await ok<Offer>(await call('POST', '/v1/webrtc/offer', { clientId: 'small' }), 'small offer');
      assert.ok(offer.sessionId);
    },
    { maxBodyBytes: 1024 },
  ),
);

test('unknown routes are 404 not_found and a wrong method is 405 method_not_allowed', () =>
  withServer(async ({ call }) => {
    await expectError(await call('GET', '/v1/webrtc/nope'), 404, 'not_found', 'unknown REST route');
    await expectError(await call('POST', '/v1/webrtc/offer/extra/segments', {}), 404, 'not_found', 'extra segments');
    await expectError(await call('GET', '/nowhere'), 404, 'not_found', 'unknown path');
    await expectError(await call('PUT', '/v1/webrtc/offer', {}), 405, 'method_not_allowed', 'PUT offer');
    await expectError(await call('GET', '/v1/webrtc/offer'), 405, 'method_not_allowed', 'GET offer');
    await expectError(await call('POST', '/v1/webrtc/session/abc', {}), 405, 'method_not_allowed', 'POST session');
    const root = await ok<{ name: string; trpc: string; rest: string }>(await call('GET', '/'), 'root');
    assert.is(root.name, 'tabagent-webrtc');
    assert.is(root.rest, '/v1/webrtc/');
  }),
);

test('CORS: an extension preflight is 204 with the allow headers, and its POST carries allow-origin', () =>
  withServer(async ({ call }) => {
    const preflight = await call('OPTIONS', '/v1/webrtc/offer', undefined, {
      headers: { origin: EXTENSION, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.is(preflight.status, 204);
    assert.is(preflight.headers.get('access-control-allow-origin'), EXTENSION);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /DELETE/);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /content-type/);
    assert.match(preflight.headers.get('vary') ?? '', /Origin/i);

    const offer = await call('POST', '/v1/webrtc/offer', { clientId: 'ext' }, { headers: { origin: EXTENSION } });
    assert.is(offer.headers.get('access-control-allow-origin'), EXTENSION);
    const { sessionId } = await ok<Offer>(offer, 'offer from the extension');

    // Errors carry CORS headers too, so the page can read them.
    const missing = await call('GET', '/v1/webrtc/session/nope', undefined, { headers: { origin: EXTENSION } });
    assert.is(missing.headers.get('access-control-allow-origin'), EXTENSION);
    await expectError(missing, 404, 'not_found', 'error from the extension');

    // And the tRPC endpoint.
    const trpc = await call('GET', `/trpc/rpc.health`, undefined, { headers: { origin: EXTENSION } });
    assert.is(trpc.headers.get('access-control-allow-origin'), EXTENSION);
    await ok(await call('DELETE', `/v1/webrtc/session/${sessionId}`, undefined, { headers: { origin: EXTENSION } }), 'delete');
  }),
);

test('CORS: an origin not allowed is 403 forbidden, preflight included, and creates no session', () =>
  withServer(async ({ call, server }) => {
    const evil = { origin: 'https://evil.example' };
    const preflight = await call('OPTIONS', '/v1/webrtc/offer', undefined, { headers: { ...evil, 'access-control-request-method': 'POST' } });
    assert.is(preflight.headers.get('access-control-allow-origin'), null);
    await expectError(preflight, 403, 'forbidden', 'evil preflight');
    const post = await call('POST', '/v1/webrtc/offer', {}, { headers: evil });
    assert.is(post.headers.get('access-control-allow-origin'), null);
    await expectError(post, 403, 'forbidden', 'evil POST');
    await expectError(await call('GET', '/trpc/rpc.health', undefined, { headers: evil }), 403, 'forbidden', 'evil tRPC');
    assert.is(server.app.sessions.size, 0, 'no session was created');
  }),
);

test('CORS: a configured web origin is allowed, others still are not', () =>
  withServer(
    async ({ call }) => {
      const seed = { origin: 'http://seed.test' };
      const preflight = await call('OPTIONS', '/v1/webrtc/offer', undefined, { headers: { ...seed, 'access-control-request-method': 'POST' } });
      assert.is(preflight.status, 204);
      assert.is(preflight.headers.get('access-control-allow-origin'), 'http://seed.test');
      const offer = await call('POST', '/v1/webrtc/offer', {}, { headers: seed });
      assert.is(offer.headers.get('access-control-allow-origin'), 'http://seed.test');
      const { sessionId } = await ok<Offer>(offer, 'offer from the configured origin');
      await ok(await call('DELETE', `/v1/webrtc/session/${sessionId}`, undefined, { headers: seed }), 'delete');
      await expectError(await call('POST', '/v1/webrtc/offer', {}, { headers: { origin: 'http://other.test' } }), 403, 'forbidden', 'other');
    },
    { allowedOrigins: ['http://seed.test'] },
  ),
);

test.run();
