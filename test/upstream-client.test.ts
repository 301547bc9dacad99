/**
 * The upstream client's edges: every HTTP status in our error codes, the upstream's own messages (OpenAI's and
 * Ollama's error shapes), and incremental SSE / NDJSON parsing across arbitrary chunk boundaries.
 * The upstream here is a tiny loopback server answering whatever status a test asks for, and the test upstream
 * (test/fixtures/upstream.ts) for detection.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Upstream } from '../src/engine/inference/upstream/client.ts';
import { lines, ndjson, sseEvents } from '../src/engine/inference/upstream/streams.ts';
import { AppError } from '../src/errors.ts';
import { setLogLevel } from '../src/log.ts';
import { startUpstream } from './fixtures/upstream.ts';

setLogLevel('warn');

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function* chunked(text: string, size: number): AsyncGenerator<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const parsing = suite('stream parsing');

parsing('SSE events survive any chunking, CRLF, comments and multi-line data', async () => {
  const text = ': keep-alive\r\nevent: response.output_text.delta\r\ndata: {"delta":"é€"}\r\n\r\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n';
  for (const size of [1, 2, 3, 7, 1000]) {
    const events = await collect(sseEvents(chunked(text, size)));
    assert.equal(events, [
      { event: 'response.output_text.delta', data: '{"delta":"é€"}' },
      { data: 'line one\nline two' },
      { data: '[DONE]' },
    ], `chunks of ${size}`);
  }
});

parsing('NDJSON lines parse one by one; a broken line is a malformed-stream upstream_error', async () => {
  assert.equal(await collect(ndjson(chunked('{"status":"a"}\n\n{"status":"b"}\r\n', 4))), [{ status: 'a' }, { status: 'b' }]);
  const error = await collect(ndjson(chunked('{"ok":1}\n{broken\n', 5))).catch((e) => e);
  assert.instance(error, AppError);
  assert.is((error as AppError).code, 'upstream_error');
});

parsing('a lone CR at a chunk edge is not mistaken for two line ends', async () => {
  assert.equal(await collect(lines(chunked('a\r\nb\rc\n', 2))), ['a', 'b', 'c']);
});

parsing.run();

const statuses = suite('upstream HTTP errors');
let server: http.Server;
let root: string;

statuses.before(async () => {
  server = http.createServer((req, res) => {
    const [, kind, status] = req.url!.split('/');
    if (!Number(status)) return void res.writeHead(404).end(); // e.g. the Ollama probe: this is not Ollama
    res.writeHead(Number(status), { 'content-type': kind === 'text' ? 'text/plain' : 'application/json' });
    if (kind === 'openai') res.end(JSON.stringify({ error: { message: `openai says ${status}`, type: 'x' } }));
    else if (kind === 'ollama') res.end(JSON.stringify({ error: `ollama says ${status}` }));
    else res.end(`plain ${status}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  root = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
statuses.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

statuses('each status maps to our code, keeping the upstream message', async () => {
  const upstream = new Upstream({ url: root, idleTimeoutMs: 5_000 });
  const expected: [number, string][] = [
    [400, 'invalid_request'],
    [401, 'backend_unavailable'],
    [403, 'backend_unavailable'],
    [404, 'not_found'],
    [408, 'timeout'],
    [413, 'payload_too_large'],
    [422, 'invalid_request'],
    [429, 'rate_limited'],
    [500, 'upstream_error'],
    [501, 'not_supported'],
    [502, 'upstream_error'],
    [503, 'upstream_error'],
    [504, 'timeout'],
  ];
  for (const [status, code] of expected) {
    for (const kind of ['openai', 'ollama', 'text']) {
      const error = await upstream.request(`/${kind}/${status}`, { signal: new AbortController().signal }).catch((e) => e);
      assert.instance(error, AppError, `${kind} ${status}`);
      assert.is((error as AppError).code, code, `${kind} ${status}`);
      assert.ok((error as AppError).message.includes(kind === 'text' ? `plain ${status}` : `${kind} says ${status}`));
      assert.is(((error as AppError).details as { upstream_status: number }).upstream_status, status);
    }
  }
});

statuses.run();

const detection = suite('upstream detection');

detection('without a URL, a local Ollama is found and used; without one, the error says how to configure one', async () => {
  const ollama = await startUpstream({ ollama: true });
  try {
    const found = new Upstream({ idleTimeoutMs: 5_000, detectUrl: ollama.url });
    assert.equal(await found.resolve(), { root: ollama.url, ollama: true });
  } finally {
    await ollama.close();
  }
  const missing = new Upstream({ idleTimeoutMs: 5_000, detectUrl: ollama.url }); // nothing listens there now
  const error = await missing.resolve().catch((e) => e);
  assert.instance(error, AppError);
  assert.is((error as AppError).code, 'backend_unavailable');
  assert.match((error as AppError).message, /TABAGENT_UPSTREAM_URL/);
  assert.match((error as AppError).message, /11434/);
});

detection('a configured URL is probed once for Ollama\'s native API', async () => {
  const plain = await startUpstream();
  try {
    assert.equal(await new Upstream({ url: `${plain.url}/v1`, idleTimeoutMs: 5_000 }).resolve(), { root: plain.url, ollama: false });
  } finally {
    await plain.close();
  }
});

detection.run();
