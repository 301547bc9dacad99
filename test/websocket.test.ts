import http from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { App } from '../src/app.ts';
import type { ConfigInput } from '../src/config.ts';
import { encodeEnvelope, encodeFragment } from '../src/protocol/framing.ts';
import { WebSocketClient, type Frame } from '../src/transports/websocket/client.ts';
import { WEBSOCKET_PATH } from '../src/transports/websocket/endpoint.ts';
import { fakeInference } from './fixtures/engine.ts';
import { startServer, until } from './fixtures/server.ts';

const MAX_MESSAGE_BYTES = 64 * 1024;

interface WsServer {
  app: App;
  url: URL;
  connect(): Promise<WebSocketClient>;
  close(): Promise<void>;
}

/** The test server with the fake inference engine behind it, and WebSocket clients that close with it. */
async function startWsServer(overrides: ConfigInput, onStart: (signal: AbortSignal) => void): Promise<WsServer> {
  const server = await startServer(overrides, { engines: fakeInference({ tokenDelayMs: 20, onStart }) });
  const url = new URL(WEBSOCKET_PATH, server.url.replace('http', 'ws'));
  const clients: WebSocketClient[] = [];
  return {
    app: server.app,
    url,
    async connect() {
      const client = await WebSocketClient.connect(url);
      clients.push(client);
      return client;
    },
    async close() {
      await server.app.close(0);
      await Promise.all(clients.map((client) => client.close()));
      await server.close();
    },
  };
}

/** A raw upgrade request, so the test controls the Origin header; resolves with the status (101 when upgraded). */
function upgradeStatus(url: URL, origin: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(new URL(url.pathname, `http://${url.host}`), {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', origin },
    });
    request.on('upgrade', (_response, socket) => {
      socket.destroy();
      resolve({ status: 101, body: '' });
    });
    request.on('response', (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

const chat = (content: string, stream = true): Frame => ({ action: 'chat', messages: [{ role: 'user', content }], stream });
const nextUnsolicited = (client: WebSocketClient) => new Promise<Frame>((resolve) => (client.onUnsolicited = resolve));

const ws = suite('WebSocket transport');
let server: WsServer;
let started: AbortSignal[] = [];

ws.before(async () => {
  server = await startWsServer({ maxMessageBytes: MAX_MESSAGE_BYTES, maxSessionsPerIp: 50 }, (signal) => started.push(signal));
});
ws.after(() => server.close());

ws('health round trip: the data channel\'s frames, request_id echoed', async () => {
  const client = await server.connect();
  const { frame } = await client.request({ action: 'health', request_id: 'h-1' });
  assert.is(frame.request_id, 'h-1');
  assert.is(frame.type, 'health');
  assert.is(frame.status, 'ok');
  const seed = await client.request({ request_type: 'Health' });
  assert.is(seed.frame.type, 'health', 'the seed\'s PascalCase form works too');
  await client.close();
});

ws('streams indexed chunks before one final answer', async () => {
  const client = await server.connect();
  const chunks: Frame[] = [];
  const { frame } = await client.request(chat('one two three'), { onFrame: (chunk) => chunks.push(chunk) });
  assert.equal(chunks.map((chunk) => chunk.index), [0, 1, 2]);
  assert.is(chunks.map((chunk) => chunk.delta).join(''), 'one two three');
  assert.is(frame.type, 'chat_response');
  assert.is(frame.response, 'one two three');
  await client.close();
});

ws('stop_generation cancels the named request; its answer is cancelled', async () => {
  const client = await server.connect();
  started = [];
  let firstChunk!: () => void;
  const streaming = new Promise<void>((resolve) => (firstChunk = resolve));
  const answer = client.request({ ...chat('a b c d e f g h i j k l m n o p'), request_id: 'long' }, { onFrame: () => firstChunk() });
  await streaming;
  const stop = await client.request({ action: 'stop_generation', target_request_id: 'long' });
  assert.equal(stop.frame.stopped, ['long']);
  const { frame } = await answer;
  assert.is(frame.type, 'error');
  assert.is(frame.code, 'cancelled');
  assert.ok(started[0].aborted, 'the handler saw its signal abort');
  await client.close();
});

ws('bad JSON gets a typed error without request_id, and the socket keeps serving', async () => {
  const client = await server.connect();
  const unsolicited = nextUnsolicited(client);
  client.send('{"action": "health",');
  const error = await unsolicited;
  assert.is(error.type, 'error');
  assert.is(error.code, 'invalid_json');
  assert.is(error.request_id, undefined);
  const unknown = await client.request({ action: 'no_such_thing' });
  assert.is(unknown.frame.code, 'unknown_action');
  const { frame } = await client.request({ action: 'health' });
  assert.is(frame.status, 'ok');
  await client.close();
});

ws('binary ENVELOPE frames carry attachments both ways; other binary kinds get a typed error', async () => {
  const client = await server.connect();
  const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
  const { frame, attachment } = await client.request({ action: 'echo', data: { n: 1 } }, { attachment: bytes });
  assert.is(frame.attachment_bytes, bytes.length);
  assert.equal(frame.data, { n: 1 });
  assert.equal(attachment, bytes);

  const unsolicited = nextUnsolicited(client);
  client.send(encodeFragment(1, 0, 2, 0, new Uint8Array(8)));
  const error = await unsolicited;
  assert.is(error.code, 'invalid_request');
  assert.is((await client.request({ action: 'health' })).frame.status, 'ok');
  await client.close();
});

ws('a message over maxMessageBytes is answered payload_too_large and the socket keeps serving', async () => {
  const client = await server.connect();
  const unsolicited = nextUnsolicited(client);
  client.send(JSON.stringify({ action: 'echo', data: 'x'.repeat(MAX_MESSAGE_BYTES) }));
  const error = await unsolicited;
  assert.is(error.code, 'payload_too_large');
  assert.equal(error.details, { limit: MAX_MESSAGE_BYTES });
  const binary = nextUnsolicited(client);
  client.send(encodeEnvelope('{"action":"echo"}', new Uint8Array(MAX_MESSAGE_BYTES)));
  assert.is((await binary).code, 'payload_too_large');
  assert.is((await client.request({ action: 'health' })).frame.status, 'ok');

  // Far past the cap the message is refused unread: the socket closes with 1009 (Message Too Big).
  client.send(new Uint8Array(server.app.websockets.maxReadBytes + 1));
  assert.is((await client.closed).code, 1009);
});

ws('closing the socket cancels its in-flight requests', async () => {
  const client = await server.connect();
  started = [];
  const answer = client.request(chat('a b c d e f g h i j k l m n o p q r s t'));
  await until(() => started.length === 1, 'the generation to start');
  await client.close();
  await until(() => started[0].aborted, 'the handler\'s signal to abort');
  assert.is((await answer.catch((error) => error)).code, 'interrupted', 'the client gives up on it too');
  await until(() => server.app.dispatcher.inFlightCount === 0, 'nothing in flight');
});

ws('a disallowed Origin is refused before the upgrade; extension origins are let in', async () => {
  const refused = await upgradeStatus(server.url, 'https://evil.example');
  assert.is(refused.status, 403);
  assert.is(JSON.parse(refused.body).error.code, 'forbidden');
  assert.is((await upgradeStatus(server.url, 'chrome-extension://abcdefghijklmnop')).status, 101);
});

ws('plain HTTP on the route gets 426 Upgrade Required; other methods 405', async () => {
  const http = new URL(server.url.pathname, `http://${server.url.host}`);
  const plain = await fetch(http);
  assert.is(plain.status, 426);
  assert.is(plain.headers.get('upgrade'), 'websocket');
  assert.is((await fetch(http, { method: 'POST' })).status, 405);
});

ws('sockets count against the session limits: over the per-address one, 429 session_limit', async () => {
  const own = await startWsServer({ maxSessionsPerIp: 1 }, () => {});
  const first = await own.connect();
  const refused = await upgradeStatus(own.url, 'chrome-extension://abcdefghijklmnop');
  assert.is(refused.status, 429);
  assert.is(JSON.parse(refused.body).error.code, 'session_limit');
  await first.close();
  await until(() => own.app.websockets.size === 0, 'the server to see the socket close');
  const second = await own.connect();
  assert.is((await second.request({ action: 'health' })).frame.status, 'ok');
  await own.close();
});

ws('shutdown tells every socket, lets requests finish, then closes with 1001', async () => {
  const own = await startWsServer({ shutdownGraceMs: 2_000 }, () => {});
  const client = await own.connect();
  const notices: Frame[] = [];
  client.onUnsolicited = (frame) => notices.push(frame);
  const answer = client.request(chat('a b c d e'));
  await new Promise((resolve) => setTimeout(resolve, 30));
  const closing = own.app.close();
  const { frame } = await answer;
  assert.is(frame.type, 'chat_response', 'the request in flight finished');
  await closing;
  assert.is((await client.closed).code, 1001);
  assert.equal(notices.map((notice) => notice.event), ['shutting_down']);
  await own.close();
});

ws.run();
