/**
 * DNS rebinding: a page on `evil.example`, its name re-pointed at 127.0.0.1, sends same-origin requests with
 * `Host: evil.example` and often no `Origin`. Against a live server, every route refuses such a request (403,
 * naming TABAGENT_ALLOWED_HOSTS) with or without an Origin, and nothing happens; the server's own names still work.
 */
import http from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../src/config.ts';
import { actions, registry } from '../src/protocol/registry.ts';
import { HostAllowlist, hostName } from '../src/security/hosts.ts';
import { openStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { embeddedBackend } from './fixtures/store.ts';
import { startServer, type TestServer } from './fixtures/server.ts';

interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A request with exactly these headers (fetch would not let a test set Host). */
function send(server: TestServer, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(path, server.url), { method, headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text, headers: response.headers }));
    });
    // A WebSocket upgrade that is accepted answers 101 and hands over the socket.
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode ?? 0, body: '', headers: response.headers });
    });
    request.on('error', reject);
    request.end(body);
  });
}

const trpcInput = (value: unknown) => encodeURIComponent(JSON.stringify({ json: value }));

/** Every route, as a rebinding page would call it: [name, method, path, body?, extra headers?]. */
function routes(sessionId: string): [string, string, string, string?, Record<string, string>?][] {
  const json = JSON.stringify;
  const rpc = actions.map((action): [string, string, string, string?] =>
    registry[action].kind === 'query'
      ? [`rpc.${action}`, 'GET', `/trpc/rpc.${action}?input=${trpcInput({})}`]
      : [`rpc.${action}`, 'POST', `/trpc/rpc.${action}`, json({ json: {} })],
  );
  return [
    ['GET /', 'GET', '/'],
    ['an unknown path', 'GET', '/nope'],
    ['a preflight', 'OPTIONS', '/trpc/webrtc.offer', undefined, { 'access-control-request-method': 'POST' }],
    ['REST offer', 'POST', '/v1/webrtc/offer', '{}'],
    ['REST answer', 'POST', `/v1/webrtc/answer/${sessionId}`, json({ answerSdp: 'v=0' })],
    ['REST ice', 'POST', `/v1/webrtc/ice/${sessionId}`, json({ candidate: null })],
    ['REST session', 'GET', `/v1/webrtc/session/${sessionId}`],
    ['REST close', 'DELETE', `/v1/webrtc/session/${sessionId}`],
    ['webrtc.offer', 'POST', '/trpc/webrtc.offer', json({ json: {} })],
    ['webrtc.answer', 'POST', '/trpc/webrtc.answer', json({ json: { sessionId, answerSdp: 'v=0' } })],
    ['webrtc.ice', 'POST', '/trpc/webrtc.ice', json({ json: { sessionId, candidate: null } })],
    ['webrtc.close', 'POST', '/trpc/webrtc.close', json({ json: { sessionId } })],
    ['webrtc.session', 'GET', `/trpc/webrtc.session?input=${trpcInput({ sessionId })}`],
    ['webrtc.iceServers', 'GET', `/trpc/webrtc.iceServers?input=${trpcInput({})}`],
    ['webrtc.events (SSE)', 'GET', `/trpc/webrtc.events?input=${trpcInput({ sessionId })}`],
    ['a tRPC batch', 'GET', `/trpc/rpc.chat_history,rpc.list_documents?batch=1&input=${encodeURIComponent('{"0":{"json":{}},"1":{"json":{}}}')}`],
    ['the WebSocket upgrade', 'GET', '/v1/ws', undefined, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }],
    ...rpc,
  ];
}

const server = suite('Host allowlist on a live server');
const backend = embeddedBackend();
let store: Store;
let live: TestServer;

server.before(async () => {
  store = await openStore(backend.options());
  live = await startServer({ allowedHosts: ['tabagent.lan', '.example.com'] }, { store });
});
server.after(async () => {
  await live?.close();
  await store?.close();
  await backend.cleanup();
});

server('a rebound Host is refused on every route, with and without an Origin, and nothing happens', async () => {
  const port = new URL(live.url).port;
  const own = { host: `127.0.0.1:${port}`, 'content-type': 'application/json' };
  const saved = await send(live, 'POST', '/trpc/rpc.save_message', own, JSON.stringify({ json: { session_id: 's', message: { role: 'user', content: 'secret' } } }));
  assert.is(saved.status, 200, 'the server itself works');
  const offer = JSON.parse((await send(live, 'POST', '/v1/webrtc/offer', own, '{}')).body) as { sessionId: string };
  const sessions = live.app.sessions.size;

  const rebound = `evil.example:${port}`;
  for (const origin of [undefined, `http://${rebound}`]) {
    for (const [what, method, path, body, extra] of routes(offer.sessionId)) {
      const headers = { host: rebound, 'content-type': 'application/json', ...(origin && { origin }), ...extra };
      const reply = await send(live, method, path, headers, body);
      const label = `${what} ${origin ? 'with' : 'without'} an Origin`;
      assert.is(reply.status, 403, label);
      assert.match(reply.body, /"code":"forbidden"/, label);
      assert.match(reply.body, /TABAGENT_ALLOWED_HOSTS/, `${label}: names the setting`);
      assert.not.match(reply.body, /secret/, `${label}: no data`);
      assert.is(reply.headers['access-control-allow-origin'], undefined, `${label}: no CORS grant`);
    }
  }
  assert.is(live.app.sessions.size, sessions, 'no session was opened or closed');
  assert.is(live.app.sessions.get(offer.sessionId).state, 'waiting_for_answer');
  const history = await send(live, 'GET', `/trpc/rpc.chat_history?input=${trpcInput({})}`, own);
  assert.equal(
    (JSON.parse(history.body) as { result: { data: { json: { messages: { content: string }[] } } } }).result.data.json.messages.map((m) => m.content),
    ['secret'],
    'nothing was saved or deleted through the rebound name',
  );
});

server("the server's own names are served: loopback, localhost, IP addresses and TABAGENT_ALLOWED_HOSTS", async () => {
  const port = new URL(live.url).port;
  const served = [
    `127.0.0.1:${port}`,
    '127.0.0.1',
    `localhost:${port}`,
    'LOCALHOST.',
    `app.localhost:${port}`,
    `[::1]:${port}`,
    '192.168.1.20:8080',
    `tabagent.lan:${port}`,
    'TabAgent.LAN',
    'example.com',
    `api.example.com:${port}`,
  ];
  for (const host of served) {
    const reply = await send(live, 'GET', `/trpc/rpc.health?input=${trpcInput({})}`, { host });
    assert.is(reply.status, 200, host);
  }
  const refused = ['evil.example', 'tabagent.lan.evil.example', 'notexample.com', 'localhost.evil.example', 'evil.example/x', 'user@127.0.0.1', '[::1', 'a b', '2130706433'];
  for (const host of refused) {
    assert.is((await send(live, 'GET', '/', { host })).status, 403, host);
  }
});

server('TABAGENT_ALLOWED_HOSTS=* turns the check off, for a proxy that checks names itself', async () => {
  const open = await startServer({ allowedHosts: ['*'] });
  try {
    assert.is((await send(open, 'GET', `/trpc/rpc.health?input=${trpcInput({})}`, { host: 'anything.example:443' })).status, 200);
  } finally {
    await open.close();
  }
});

const parsing = suite('Host names');

parsing('hostName: the name without port or final dot, lowercased; brackets off IPv6; nothing for what is not a host', () => {
  const cases: [string, string | undefined][] = [
    ['Example.COM.:8080', 'example.com'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]:8080', '::1'],
    ['[::FFFF:127.0.0.1]', '::ffff:127.0.0.1'],
    ['localhost', 'localhost'],
    ['', undefined],
    [':8080', undefined],
    ['[evil.example]', undefined],
    ['a:b:c', undefined],
    ['host:99999999', undefined],
    ['x/y', undefined],
    ['u@h', undefined],
  ];
  for (const [header, name] of cases) assert.is(hostName(header), name, JSON.stringify(header));
});

parsing('a request without Host is served: it comes from a program (HTTP/1.0), not from a browser page', () => {
  assert.ok(new HostAllowlist([]).allows(null));
  assert.not.ok(new HostAllowlist([]).allows(''));
});

parsing('TABAGENT_ALLOWED_HOSTS is checked at start: names, .domains or *, never ports or URLs', () => {
  assert.equal(loadConfig({ TABAGENT_ALLOWED_HOSTS: 'tabagent.lan, .example.com' }).allowedHosts, ['tabagent.lan', '.example.com']);
  for (const bad of ['tabagent.lan:8080', 'http://tabagent.lan', 'a b', '*.example.com']) {
    assert.throws(() => loadConfig({ TABAGENT_ALLOWED_HOSTS: bad }), /TABAGENT_ALLOWED_HOSTS/, bad);
  }
});

server.run();
parsing.run();
