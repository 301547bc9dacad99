/**
 * Clients that send too slowly, or go away mid-body, against a live server: a slow client is cut off after
 * TABAGENT_BODY_TIMEOUT_MS (408, connection closed), hundreds of them cannot hold the server's sockets, and a body
 * the client abandons is a debug line, not an error.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setLogLevel } from '../src/log.ts';
import { startServer, type TestServer } from './fixtures/server.ts';

const BODY_TIMEOUT_MS = 500;
/** Far above the timeout: how long a test waits for the server to act before it fails. */
const PATIENCE_MS = 10_000;

const test = suite('slow and vanishing clients');
let server: TestServer;
let port: number;

test.before(async () => {
  server = await startServer({ bodyTimeoutMs: BODY_TIMEOUT_MS, maxSessionsPerIp: 100 });
  port = Number(new URL(server.url).port);
});
test.after(() => server?.close());

/** A raw connection that sends `bytes` and then nothing; resolves with what the server sent once it closes. */
function stall(bytes: string): { closed: Promise<string>; socket: net.Socket } {
  const socket = net.connect(port, '127.0.0.1');
  socket.write(bytes);
  const closed = new Promise<string>((resolve, reject) => {
    let received = '';
    const timer = setTimeout(() => reject(new Error(`the server kept a stalled connection open; it sent ${JSON.stringify(received)}`)), PATIENCE_MS);
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => (received += chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
  return { closed, socket };
}

const health = async () => (await fetch(`${server.url}/trpc/rpc.health?input=%7B%7D`)).status;

test('headers that never finish are cut off with 408', async () => {
  const reply = await stall('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  assert.match(await reply.closed, /^HTTP\/1\.1 408/);
});

test('a body that stops arriving is cut off with 408, on REST and on tRPC', async () => {
  for (const path of ['/v1/webrtc/offer', '/trpc/webrtc.offer', '/trpc/rpc.echo']) {
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`;
    const reply = stall(`${head}{"json":{"data":"`);
    const answer = await reply.closed;
    assert.match(answer, /^HTTP\/1\.1 408/, path);
  }
  assert.is(server.app.sessions.size, 0, 'no half-sent offer made a session');
});

test('300 slow connections at once are all cut off, and the server answers others meanwhile', async () => {
  const stalled = Array.from({ length: 300 }, (_, i) =>
    stall(i % 2 ? 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n' : 'POST /v1/webrtc/offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{'),
  );
  assert.is(await health(), 200, 'served while 300 connections stall');
  const answers = await Promise.all(stalled.map((s) => s.closed));
  assert.is(answers.filter((answer) => answer.startsWith('HTTP/1.1 408')).length, 300, 'every one got 408 and was closed');
  assert.is(await health(), 200, 'served after');
});

test('a client that abandons its body is logged at debug, never as an error, and the server serves on', async () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(String(line));
  setLogLevel('debug');
  try {
    for (const path of ['/v1/webrtc/offer', '/trpc/rpc.echo']) {
      const { socket } = stall(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"data":"`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.destroy();
    }
    const deadline = Date.now() + PATIENCE_MS;
    while (!lines.some((line) => line.includes('went away before its body arrived')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(lines.some((line) => / debug .*went away before its body arrived/.test(line)), `a debug line: ${lines.join('\n')}`);
    assert.not.ok(lines.some((line) => / error /.test(line)), `no error line: ${lines.join('\n')}`);
  } finally {
    console.error = original;
    setLogLevel('warn');
  }
  assert.is(await health(), 200);
});

test.run();
