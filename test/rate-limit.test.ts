/** Rate limits: new sessions per address, messages per session; over them a typed `rate_limited`, and service goes on. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError, createSignalingClient } from '../src/client/index.ts';
import { spawnNativeHost } from '../src/transports/native/client.ts';
import { RateLimiter, TokenBucket } from '../src/security/rate-limit.ts';
import { WebSocketClient, type Answer } from '../src/transports/websocket/client.ts';
import { startServer } from './fixtures/server.ts';

const test = suite('rate limits');

test('a token bucket allows its burst, then says how long until the next token', () => {
  const bucket = new TokenBucket(3, 2, 0);
  assert.equal([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0]);
  assert.is(bucket.take(0), 500, 'two tokens a second: the next in 500 ms');
  assert.is(bucket.take(250), 250);
  assert.is(bucket.take(500), 0, 'refilled');
  assert.is(new RateLimiter(1, 0).take('anyone', 0) + new RateLimiter(1, 0).take('anyone', 0), 0, 'a rate of 0 is no limit');
});

test('new sessions per address: over the limit is 429 rate_limited with Retry-After, on REST and tRPC alike', async () => {
  const server = await startServer({ sessionRatePerMinute: 2 });
  try {
    const offer = () => fetch(`${server.url}/v1/webrtc/offer`, { method: 'POST', body: '{}' });
    assert.equal([(await offer()).status, (await offer()).status], [200, 200]);
    const refused = await offer();
    assert.is(refused.status, 429);
    const body = await refused.json();
    assert.is(body.error.code, 'rate_limited');
    assert.ok(body.error.details.retry_after_ms > 0 && body.error.details.retry_after_ms <= 30_000, 'one token comes back every 30 s');
    assert.is(refused.headers.get('retry-after'), String(Math.ceil(body.error.details.retry_after_ms / 1000)));

    const trpc = await createSignalingClient({ url: server.url }).webrtc.offer.mutate({}).catch((error) => error);
    assert.is(trpc.data?.appCode, 'rate_limited');
    assert.is(trpc.data?.httpStatus, 429);
  } finally {
    await server.close();
  }
});

test('messages per session: past the burst each gets rate_limited with retry_after_ms; the channel stays and serves after', async () => {
  const server = await startServer({ messageRatePerSecond: 5, messageBurst: 5 });
  try {
    const client = await server.client();
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.echo({ data: i })));
    const answered = results.filter((r) => r.status === 'fulfilled');
    const limited = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as AppError] : []));
    assert.ok(answered.length >= 5 && answered.length < 10, `the burst is served (${answered.length})`);
    assert.ok(limited.length > 0 && limited.every((e) => e.code === 'rate_limited'), 'the rest are rate_limited');
    const retryAfter = (limited[0].details as { retry_after_ms: number }).retry_after_ms;
    assert.ok(retryAfter > 0 && retryAfter <= 200, `a token every 200 ms (${retryAfter})`);
    await new Promise((resolve) => setTimeout(resolve, retryAfter + 20));
    assert.is((await client.echo({ data: 'after' })).data, 'after', 'the same channel serves again');
    assert.ok(client.open);
  } finally {
    await server.close();
  }
});

/** Of answers to a burst: how many were served, and the rate_limited errors among the rest. */
function tally(frames: Record<string, unknown>[]) {
  const limited = frames.filter((frame) => frame.type === 'error');
  assert.ok(limited.every((frame) => frame.code === 'rate_limited'), `only rate_limited errors: ${JSON.stringify(limited[0])}`);
  return { served: frames.length - limited.length, limited };
}

test('a WebSocket spends the same budgets: it counts as a new session, and its messages are limited like a channel\'s', async () => {
  const server = await startServer({ sessionRatePerMinute: 2, messageRatePerSecond: 5, messageBurst: 5 });
  const socketUrl = `${server.url.replace('http', 'ws')}/v1/ws`;
  try {
    assert.is((await fetch(`${server.url}/v1/webrtc/offer`, { method: 'POST', body: '{}' })).status, 200);
    const socket = await WebSocketClient.connect(socketUrl);
    const refused = await WebSocketClient.connect(socketUrl).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    assert.match(refused, '429', 'a third session a minute from this address is refused');

    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => socket.request({ action: 'echo', data: i })));
    const { served, limited } = tally(answers.map((answer: Answer) => answer.frame));
    assert.is(served, 5, 'the burst is served');
    assert.ok((limited[0].details as { retry_after_ms: number }).retry_after_ms <= 200, 'a token every 200 ms');
    assert.ok(limited.every((frame) => typeof frame.request_id === 'string'), 'each refusal names its request');
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.is((await socket.request({ action: 'echo', data: 'after' })).frame.data, 'after', 'the same socket serves again');
    await socket.close();
  } finally {
    await server.close();
  }
});

test('a native messaging port has the same message budget', async () => {
  const server = await startServer({ messageRatePerSecond: 5, messageBurst: 5 });
  const host = await spawnNativeHost({ env: { TABAGENT_DATA_DIR: server.dataDir } });
  try {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => host.request({ action: 'echo', data: i })));
    const { served, limited } = tally(answers);
    assert.is(served, 5);
    assert.is(limited.length, 5);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.is((await host.request({ action: 'echo', data: 'after' })).data, 'after');
  } finally {
    assert.is(await host.close(), 0, 'the host exits cleanly');
    await server.close();
  }
});

test.run();
