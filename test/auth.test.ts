import { TRPCClientError } from '@trpc/client';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient } from '../src/client/signaling.ts';
import { loadConfig, parseKeysFile } from '../src/config.ts';
import { ANONYMOUS, ApiKeys, bearerToken, keyId } from '../src/security/auth.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { WEBSOCKET_PATH } from '../src/transports/websocket/endpoint.ts';
import { subprotocols } from '../src/transports/websocket/subprotocol.ts';
import { fakeInference } from './fixtures/engine.ts';
import { openSse, subscriptionUrl } from './fixtures/sse.ts';
import { startServer, type TestServer } from './fixtures/server.ts';

const test = suite('API-key authentication');

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';
const ADMIN_KEY = 'key-admin-0123456789abcdef';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A server with keys A and B (and a slow fake model); closed however the test ends. */
async function withServer(body: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startServer({ apiKeys: [KEY_A, KEY_B], maxSessionsPerIp: 100 }, { engines: fakeInference({ tokenDelayMs: 20 }) });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

async function rest(server: TestServer, method: string, route: string, headers: Record<string, string> = {}, body?: unknown) {
  const response = await fetch(`${server.url}/v1/webrtc/${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string } } & Record<string, unknown> };
}

async function trpcError(promise: Promise<unknown>): Promise<TRPCClientError<never>> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, TRPCClientError);
    return error as TRPCClientError<never>;
  }
  throw new Error('expected a tRPC error');
}

function expectTrpc(error: TRPCClientError<never>, status: number, appCode: string, what: string) {
  const data = error.data as { httpStatus?: number; appCode?: string } | undefined;
  assert.is(data?.appCode, appCode, `${what}: appCode`);
  assert.is(data?.httpStatus, status, `${what}: status`);
}

/** The status a WebSocket upgrade gets: 101 when it is accepted. */
async function upgradeStatus(server: TestServer, headers: Record<string, string> = {}): Promise<number> {
  return (await upgrade(server, headers)).statusCode ?? 0;
}

function upgrade(server: TestServer, headers: Record<string, string>): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(WEBSOCKET_PATH, server.url), {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response);
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response);
    });
    request.on('error', reject);
    request.end();
  });
}

test('ApiKeys: the right key gives its id, anything else is unauthorized; no keys: anonymous', () => {
  const keys = new ApiKeys([KEY_A, KEY_B]);
  assert.ok(keys.required);
  assert.equal(keys.authenticate(`Bearer ${KEY_A}`), { id: keyId(KEY_A), admin: false });
  assert.is(keys.authenticate(`bearer ${KEY_B}`).id, keyId(KEY_B), 'the scheme is case-insensitive');
  assert.is.not(keyId(KEY_A), keyId(KEY_B));
  assert.ok(/^[0-9a-f]{16}$/.test(keyId(KEY_A)), 'the id is hex, not the key');
  assert.is(keys.match(KEY_A)?.id, keyId(KEY_A));
  for (const wrong of [`${KEY_A}x`, KEY_A.slice(0, -1), '', 'short']) assert.is(keys.match(wrong), undefined, `no match for ${wrong}`);
  for (const header of [undefined, null, '', KEY_A, `Basic ${KEY_A}`, 'Bearer nope', `Bearer ${KEY_A} extra`]) {
    assert.throws(() => keys.authenticate(header), (error: Error & { code?: string }) => error.code === 'unauthorized', String(header));
  }
  const open = new ApiKeys([]);
  assert.not.ok(open.required);
  assert.equal(open.authenticate(undefined), { id: ANONYMOUS, admin: true }, 'without keys everyone may do everything');
  assert.is(open.authenticate('Bearer anything').id, ANONYMOUS);
  assert.is(bearerToken(`Bearer  ${KEY_A} `), KEY_A);
});

test('admin keys are keys too, and the only ones marked admin; alone they turn authentication on', () => {
  const keys = new ApiKeys([KEY_A], [ADMIN_KEY]);
  assert.equal(keys.authenticate(`Bearer ${ADMIN_KEY}`), { id: keyId(ADMIN_KEY), admin: true });
  assert.equal(keys.authenticate(`Bearer ${KEY_A}`), { id: keyId(KEY_A), admin: false });
  assert.is(new ApiKeys([KEY_A, ADMIN_KEY], [ADMIN_KEY]).authenticate(`Bearer ${ADMIN_KEY}`).admin, true, 'listed in both');
  const adminOnly = new ApiKeys([], [ADMIN_KEY]);
  assert.ok(adminOnly.required);
  assert.throws(() => adminOnly.authenticate(undefined), /Missing API key/);
  assert.equal(loadConfig({ TABAGENT_ADMIN_KEYS: ` ${ADMIN_KEY} ` }).adminKeys, [ADMIN_KEY]);
  assert.throws(() => loadConfig({ TABAGENT_ADMIN_KEYS: 'short' }), /TABAGENT_ADMIN_KEYS: .*at least 16/);
});

test('config: TABAGENT_API_KEYS and TABAGENT_API_KEYS_FILE (comments, blank lines), errors name the variable', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tabagent-keys-'));
  try {
    const file = path.join(dir, 'keys');
    await writeFile(file, `# team keys\n\n  ${KEY_B}  \n# ${KEY_A}\nkey-with-#-inside-0123\n`);
    assert.equal(parseKeysFile(`# c\n\n${KEY_A}\r\n`), [KEY_A]);
    assert.equal(loadConfig({ TABAGENT_API_KEYS: ` ${KEY_A}, ` }).apiKeys, [KEY_A]);
    assert.equal(loadConfig({ TABAGENT_API_KEYS: KEY_A, TABAGENT_API_KEYS_FILE: file }).apiKeys, [KEY_A, KEY_B, 'key-with-#-inside-0123']);
    assert.equal(loadConfig({}).apiKeys, [], 'no keys by default');
    assert.throws(() => loadConfig({ TABAGENT_API_KEYS: 'too-short' }), /TABAGENT_API_KEYS: .*at least 16/);
    assert.throws(() => loadConfig({ TABAGENT_API_KEYS_FILE: path.join(dir, 'missing') }), /TABAGENT_API_KEYS_FILE: cannot read/);
    await writeFile(file, '# nothing\n\n');
    assert.throws(() => loadConfig({ TABAGENT_API_KEYS_FILE: file }), /TABAGENT_API_KEYS_FILE: .* has no keys/);
    await writeFile(file, `${KEY_A}\nshort\n`);
    assert.throws(
      () => loadConfig({ TABAGENT_API_KEYS_FILE: file }),
      (error: Error) => /TABAGENT_API_KEYS_FILE: key 2 .*shorter than 16/.test(error.message) && !error.message.includes(KEY_A),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('no key or a wrong key: 401 unauthorized on REST, tRPC (webrtc.* and rpc.*), SSE and the WebSocket upgrade', () =>
  withServer(async (server) => {
    for (const [what, headers] of [['no key', {}], ['wrong key', bearer('wrong-0123456789abcdef')]] as const) {
      const offer = await rest(server, 'POST', 'offer', headers, {});
      assert.is(offer.status, 401, `${what}: REST offer`);
      assert.is(offer.body.error?.code, 'unauthorized', `${what}: REST error code`);
      assert.is((await rest(server, 'GET', 'session/whatever', headers)).status, 401, `${what}: REST session`);

      const api = createSignalingClient({ url: server.url, headers: () => headers });
      expectTrpc(await trpcError(api.webrtc.offer.mutate({})), 401, 'unauthorized', `${what}: tRPC offer`);
      expectTrpc(await trpcError(api.rpc.health.query()), 401, 'unauthorized', `${what}: rpc.health`);

      // SSE answers 200 and then tRPC's error event, which EventSource clients read as a TRPCClientError.
      const sse = await openSse(subscriptionUrl(server.url, 'webrtc.events', { sessionId: 'whatever' }), headers);
      try {
        const error = await sse.next((event) => event.event === 'serialized-error', `${what}: the SSE error`);
        assert.match(error.data, /"appCode":"unauthorized"/, `${what}: SSE`);
        assert.match(error.data, /"httpStatus":401/, `${what}: SSE status`);
      } finally {
        sse.close();
      }

      assert.is(await upgradeStatus(server, headers), 401, `${what}: WebSocket upgrade`);
    }
    assert.is(server.app.sessions.size, 0, 'no session was made');
  }),
);

test('GET / and CORS preflights need no key; the preflight allows the authorization header', () =>
  withServer(async (server) => {
    assert.is((await fetch(`${server.url}/`)).status, 200);
    const preflight = await fetch(`${server.url}/v1/webrtc/offer`, {
      method: 'OPTIONS',
      headers: { origin: 'chrome-extension://abc', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    assert.is(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /\bauthorization\b/);
  }),
);

test('the right key: a wrtc client connects and health answers over the data channel; rpc.* and the WebSocket work', () =>
  withServer(async (server) => {
    const client = await server.client({ headers: () => bearer(KEY_A) });
    assert.is((await client.health()).status, 'ok');
    assert.is(server.app.sessions.get(client.sessionId).owner, keyId(KEY_A), 'the session records its key id');
    const api = createSignalingClient({ url: server.url, headers: () => bearer(KEY_B) });
    assert.is((await api.rpc.health.query()).status, 'ok');
    assert.is(await upgradeStatus(server, bearer(KEY_B)), 101);
  }),
);

test('a browser\'s WebSocket offers the key as a subprotocol; the server accepts `tabagent` and never echoes the key', () =>
  withServer(async (server) => {
    const url = new URL(WEBSOCKET_PATH, server.url.replace('http', 'ws'));
    const socket = await WebSocketClient.connect(url, { apiKey: KEY_A });
    try {
      assert.is((await socket.request({ action: 'health' })).frame.status, 'ok');
    } finally {
      await socket.close();
    }
    const offered = (key: string) => ({ 'sec-websocket-protocol': subprotocols(key).join(', ') });
    const accepted = await upgrade(server, offered(KEY_B));
    assert.is(accepted.statusCode, 101);
    assert.is(accepted.headers['sec-websocket-protocol'], 'tabagent', 'only `tabagent` comes back');
    assert.is(await upgradeStatus(server, offered('wrong-0123456789abcdef')), 401, 'a wrong key in the subprotocol');
    assert.is(await upgradeStatus(server, { 'sec-websocket-protocol': 'tabagent, tabagent.bearer.%%%' }), 401, 'a key that is not base64url');
    const refused = await WebSocketClient.connect(url).then(() => 'opened', (error: Error) => error.message);
    assert.match(refused, '401', 'no key');
  }),
);

test('rpc.* stop_generation and halt_status see the calling key\'s requests only', () =>
  withServer(async (server) => {
    const a = createSignalingClient({ url: server.url, headers: () => bearer(KEY_A) });
    const b = createSignalingClient({ url: server.url, headers: () => bearer(KEY_B) });
    const words = Array.from({ length: 25 }, (_, i) => `w${i}`).join(' ');
    const chat = a.rpc.chat.mutate({ messages: [{ role: 'user', content: words }] }).catch((error: TRPCClientError<never>) => error);
    for (const deadline = Date.now() + 5_000; !(await a.rpc.halt_status.query({})).generating; ) {
      if (Date.now() > deadline) throw new Error('the chat never started');
    }
    assert.is((await b.rpc.halt_status.query({})).generating, false, 'B sees nothing of A\'s');
    assert.equal((await b.rpc.stop_generation.mutate({})).stopped, [], 'B stops nothing of A\'s');
    assert.is((await a.rpc.stop_generation.mutate({})).stopped.length, 1, 'A stops its own');
    const stopped = await chat;
    assert.instance(stopped, TRPCClientError, 'the chat ended cancelled');
    expectTrpc(stopped as TRPCClientError<never>, 499, 'cancelled', 'the stopped chat');
  }),
);

test("another key cannot see, answer, trickle to, follow, close or resume a session: not_found, as for an unknown id", () =>
  withServer(async (server) => {
    const offer = await rest(server, 'POST', 'offer', bearer(KEY_A), {});
    assert.is(offer.status, 200);
    const sessionId = offer.body.sessionId as string;
    const resumeToken = offer.body.resumeToken as string;
    const unknown = await rest(server, 'GET', 'session/no-such-session', bearer(KEY_B));

    const routes: [string, string, unknown?][] = [
      ['GET', `session/${sessionId}`],
      ['POST', `answer/${sessionId}`, { answerSdp: 'v=0' }],
      ['POST', `ice/${sessionId}`, { candidate: null }],
      ['DELETE', `session/${sessionId}`],
    ];
    for (const [method, route, body] of routes) {
      const answer = await rest(server, method, route, bearer(KEY_B), body);
      assert.is(answer.status, 404, `REST ${method} ${route}`);
      assert.equal(answer.body, unknown.body, `REST ${method} ${route} reads as an unknown session`);
    }
    const resumed = await rest(server, 'POST', 'offer', bearer(KEY_B), { resumeToken });
    assert.is(resumed.status, 404, 'resume with another key');
    assert.is(resumed.body.error?.code, 'not_found');

    const api = createSignalingClient({ url: server.url, headers: () => bearer(KEY_B) });
    expectTrpc(await trpcError(api.webrtc.session.query({ sessionId })), 404, 'not_found', 'tRPC session');
    expectTrpc(await trpcError(api.webrtc.answer.mutate({ sessionId, answerSdp: 'v=0' })), 404, 'not_found', 'tRPC answer');
    expectTrpc(await trpcError(api.webrtc.close.mutate({ sessionId })), 404, 'not_found', 'tRPC close');
    expectTrpc(await trpcError(api.webrtc.offer.mutate({ resumeToken })), 404, 'not_found', 'tRPC resume');

    // SSE: the owner's key (in a header) or the session's ticket opens the stream; another key's ends in not_found.
    const url = subscriptionUrl(server.url, 'webrtc.events', { sessionId });
    const withTicket = subscriptionUrl(server.url, 'webrtc.events', { sessionId, ticket: offer.body.eventsTicket });
    for (const [what, streamUrl, headers] of [['the owner', url, bearer(KEY_A)], ['the ticket', withTicket, {}]] as const) {
      const own = await openSse(streamUrl, headers);
      try {
        await own.next((event) => event.event === 'message', `${what}: the first event (the server's candidates)`);
        assert.not.ok(own.events.some((event) => event.event === 'serialized-error'), `${what}: no error`);
      } finally {
        own.close();
      }
    }
    const other = await openSse(url, bearer(KEY_B));
    try {
      const error = await other.next((event) => event.event === 'serialized-error', "another key's SSE error");
      assert.match(error.data, /not_found/);
    } finally {
      other.close();
    }

    assert.is(server.app.sessions.get(sessionId).state, 'waiting_for_answer', 'the session is untouched');
    assert.is((await rest(server, 'DELETE', `session/${sessionId}`, bearer(KEY_A))).status, 200, 'its owner closes it');
  }),
);

test('the client follows events with the session\'s ticket: the key in headers() never goes into the SSE URL', async () => {
  const urls: string[] = [];
  class RecordingEventSource extends EventTarget {
    readyState = 0;
    constructor(url: string) {
      super();
      urls.push(url);
    }
    close() {}
  }
  const api = createSignalingClient({
    url: 'http://127.0.0.1:1',
    headers: () => ({ Authorization: `Bearer ${KEY_A}` }),
    EventSource: RecordingEventSource as unknown as typeof EventSource,
  });
  const subscription = api.webrtc.events.subscribe({ sessionId: 'x', ticket: 'the-ticket' }, { onData: () => {} });
  for (let i = 0; i < 100 && urls.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  subscription.unsubscribe();
  assert.is(urls.length, 1);
  assert.not.ok(decodeURIComponent(urls[0]).includes(KEY_A), 'no key in the URL');
  assert.is(new URL(urls[0]).searchParams.get('connectionParams'), null);
  assert.match(decodeURIComponent(urls[0]), /"ticket":"the-ticket"/);
});

test('a key in a URL (tRPC connectionParams) is refused with 401 on every procedure, events included', () =>
  withServer(async (server) => {
    const offer = await rest(server, 'POST', 'offer', bearer(KEY_A), {});
    const sessionId = offer.body.sessionId as string;
    const keyInUrl = `&connectionParams=${encodeURIComponent(JSON.stringify(bearer(KEY_A)))}`;
    const sse = await openSse(subscriptionUrl(server.url, 'webrtc.events', { sessionId }) + keyInUrl);
    try {
      const error = await sse.next((event) => event.event === 'serialized-error', 'the SSE error');
      assert.match(error.data, /"httpStatus":401/);
      assert.match(error.data, /not taken from URLs/);
    } finally {
      sse.close();
    }
    const query = encodeURIComponent(JSON.stringify({ json: { sessionId } }));
    for (const path of [`webrtc.session?input=${query}`, 'rpc.health?input=%7B%7D', `rpc.chat_history?input=%7B%22json%22%3A%7B%7D%7D`]) {
      const response = await fetch(`${server.url}/trpc/${path}${keyInUrl}`);
      assert.is(response.status, 401, path);
      await response.body?.cancel();
    }
  }),
);

test('without a key, webrtc.events needs the session\'s own ticket; another session\'s or a wrong one is not_found', () =>
  withServer(async (server) => {
    const first = await rest(server, 'POST', 'offer', bearer(KEY_A), {});
    const second = await rest(server, 'POST', 'offer', bearer(KEY_A), {});
    const sessionId = first.body.sessionId as string;
    assert.type(first.body.eventsTicket, 'string');
    assert.is.not(first.body.eventsTicket, first.body.resumeToken, 'the ticket is not the resume capability');
    const cases = [
      ['no ticket', {}, /"appCode":"unauthorized"/],
      ['another session\'s ticket', { ticket: second.body.eventsTicket }, /"appCode":"not_found"/],
      ['a wrong ticket', { ticket: 'x'.repeat(24) }, /"appCode":"not_found"/],
      ['the resume token', { ticket: first.body.resumeToken }, /"appCode":"not_found"/],
    ] as const;
    for (const [what, extra, expected] of cases) {
      const sse = await openSse(subscriptionUrl(server.url, 'webrtc.events', { sessionId, ...extra }));
      try {
        const error = await sse.next((event) => event.event === 'serialized-error', what);
        assert.match(error.data, expected, what);
      } finally {
        sse.close();
      }
    }
    // The ticket opens nothing else: the same call with it as a key is refused.
    const api = createSignalingClient({ url: server.url, headers: () => bearer(first.body.eventsTicket as string) });
    expectTrpc(await trpcError(api.webrtc.session.query({ sessionId })), 401, 'unauthorized', 'the ticket as a key');
  }),
);

test.run();
