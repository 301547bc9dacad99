import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError } from '../src/errors.ts';
import { fakeInference } from './fixtures/engine.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const protocol = suite('data-channel protocol');
let server: TestServer;
let startedSignals: AbortSignal[] = [];

protocol.before(async () => {
  server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 20, onStart: (s) => startedSignals.push(s) }) });
});
protocol.after(() => server.close());

protocol('answers 200 concurrent requests on one session, each with its own request_id', async () => {
  const client = await server.client();
  const values = Array.from({ length: 200 }, (_, i) => ({ n: i, text: `v${i}`.repeat(i % 7) }));
  const answers = await Promise.all(values.map((data, i) => client.request('echo', { data }, { requestId: `req-${i}` })));
  answers.forEach((answer, i) => {
    assert.is(answer.type, 'echo');
    assert.equal(answer.data, values[i]);
  });
  client.close();
});

protocol('streams chat chunks in order before exactly one final answer', async () => {
  const client = await server.client();
  const words = Array.from({ length: 30 }, (_, i) => `w${i}`);
  const stream = client.stream('chat', { messages: [{ role: 'user', content: words.join(' ') }] });
  const deltas: string[] = [];
  for await (const chunk of stream) {
    assert.is(chunk.request_id, stream.requestId);
    deltas.push(chunk.delta);
  }
  assert.is(deltas.join(''), words.join(' '));
  const final = await stream.result;
  assert.is(final.type, 'chat_response');
  assert.is(final.response, words.join(' '));
  assert.is(final.finish_reason, 'stop');
  client.close();
});

protocol('stop_generation cancels the named request through its AbortSignal; its answer is cancelled', async () => {
  const client = await server.client();
  startedSignals = [];
  const stream = client.stream('chat', { messages: [{ role: 'user', content: 'a b c d e f g h i j k l m n o p' }] });
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next(); // generation is under way
  const stopped = await client.cancel(stream.requestId);
  assert.equal(stopped.stopped, [stream.requestId]);
  const error = await stream.result.catch((e: AppError) => e);
  assert.instance(error, AppError);
  assert.is((error as AppError).code, 'cancelled');
  assert.ok(startedSignals[0].aborted, 'the handler saw its signal abort');
  client.close();
});

protocol('stop_generation without a target stops every generation of the session, not other sessions', async () => {
  const mine = await server.client();
  const other = await server.client();
  const text = Array.from({ length: 40 }, () => 'x').join(' ');
  const a = mine.request('chat', { messages: [{ role: 'user', content: text }] });
  const b = mine.request('chat', { messages: [{ role: 'user', content: text }] });
  const c = other.request('chat', { messages: [{ role: 'user', content: 'short answer' }] });
  await until(() => server.app.dispatcher.inFlightCount >= 3, 'three generations in flight');
  const status = await mine.request('halt_status');
  assert.ok(status.generating);
  assert.is(status.in_flight.length, 2);
  const { stopped } = await mine.request('stop_generation');
  assert.is(stopped.length, 2);
  for (const pending of [a, b]) assert.is(((await pending.catch((e) => e)) as AppError).code, 'cancelled');
  assert.is((await c).response, 'short answer');
  mine.close();
  other.close();
});

protocol('aborting a request through its AbortSignal on the client cancels it on the server', async () => {
  const client = await server.client();
  const controller = new AbortController();
  const pending = client.request('chat', { messages: [{ role: 'user', content: 'a b c d e f g h' }] }, { signal: controller.signal });
  await until(() => server.app.dispatcher.inFlightCount > 0, 'the request to start');
  controller.abort();
  assert.is(((await pending.catch((e) => e)) as AppError).code, 'cancelled');
  client.close();
});

protocol('pushes events to the requesting channel before the final answer', async () => {
  const client = await server.client();
  const progress: number[] = [];
  client.on('model_loading_progress', (data, frame) => {
    assert.is(data.model_id, 'm1');
    assert.ok(typeof frame.request_id === 'string');
    progress.push(data.progress);
  });
  const answer = await client.request('load_model', { model_id: 'm1' });
  assert.is(answer.type, 'model_loaded');
  assert.equal(progress, [0, 0.5, 1]);
  client.close();
});

protocol('moves several MiB each way, as text and as a binary attachment', async () => {
  const client = await server.client();
  const text = 'é€𝄞abc'.repeat(600_000); // ~6 MiB of UTF-8 with 2-, 3- and 4-byte characters
  const echoed = await client.request('echo', { data: text });
  assert.ok(echoed.data === text, 'text arrives intact');

  const bytes = new Uint8Array(7 * 1024 * 1024 + 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
  const { response, attachment } = await client.call('echo', {}, { attachment: bytes });
  assert.is(response.attachment_bytes, bytes.length);
  assert.ok(attachment && attachment.length === bytes.length && attachment.every((b, i) => b === bytes[i]), 'binary arrives intact');
  client.close();
});

protocol('serves a channel the client opens, answering on that channel', async () => {
  const client = await server.client();
  const channel = client.pc.createDataChannel('mine');
  const frames: Record<string, unknown>[] = [];
  channel.onmessage = ({ data }) => frames.push(JSON.parse(data));
  await until(() => channel.readyState === 'open', 'the client channel to open');
  channel.send(JSON.stringify({ action: 'health', request_id: 'on-mine' }));
  await until(() => frames.length > 0, 'an answer on the client channel');
  assert.is(frames[0].request_id, 'on-mine');
  assert.is(frames[0].type, 'health');
  assert.is((await client.request('health')).status, 'ok', 'the server channel still works beside it');
  client.close();
});

protocol('counts requests per action with latencies and bytes in get_stats', async () => {
  const client = await server.client();
  await client.request('health');
  const stats = await client.request('get_stats');
  assert.ok(stats.requests.by_action.health.count >= 1);
  assert.ok(stats.requests.by_action.echo.count >= 200);
  assert.ok(stats.bytes.in > 7 * 1024 * 1024 && stats.bytes.out > 7 * 1024 * 1024);
  assert.ok(stats.sessions.active >= 1);
  assert.ok(stats.peers.open >= 1, 'this session\'s peer is open');
  assert.ok(stats.peers.uncollected >= stats.peers.open);
  client.close();
});

protocol('refuses requests past the in-flight cap with rate_limited, and keeps serving', async () => {
  const capped = await startServer({ maxInFlightPerSession: 3 }, { engines: fakeInference({ tokenDelayMs: 50 }) });
  try {
    const client = await capped.client();
    const chat = () => client.request('chat', { messages: [{ role: 'user', content: 'a b c' }] }).then(
      () => 'ok',
      (e: AppError) => e.code,
    );
    const outcomes = await Promise.all([chat(), chat(), chat(), chat()]);
    assert.equal(outcomes.sort(), ['ok', 'ok', 'ok', 'rate_limited']);
    assert.is((await client.request('health')).status, 'ok');
  } finally {
    await capped.close();
  }
});

protocol.run();
