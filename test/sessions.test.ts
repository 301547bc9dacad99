import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { App } from '../src/app.ts';
import { createSignalingClient } from '../src/client/index.ts';
import { AppError } from '../src/errors.ts';
import { fakeInference } from './fixtures/engine.ts';
import { rawPeer } from './fixtures/raw-peer.ts';
import { startServer, until } from './fixtures/server.ts';

/** A REST offer as a client at `ip` would make it (the app's fetch handler takes the address from the adapter). */
function offer(app: App, ip: string): Promise<Response> {
  return app.fetch(new Request('http://server/v1/webrtc/offer', { method: 'POST', body: '{}' }), { ip });
}

const limits = suite('session limits');

limits('the 101st session gets 503 server_busy while 100 are open', async () => {
  const server = await startServer({ maxSessionsPerIp: 1000, iceGatheringTimeoutMs: 50 });
  try {
    const first = await Promise.all(Array.from({ length: 100 }, (_, i) => offer(server.app, `10.1.0.${i}`)));
    assert.ok(first.every((r) => r.status === 200), 'the first 100 are served');
    const over = await offer(server.app, '10.1.1.1');
    assert.is(over.status, 503);
    assert.is((await over.json()).error.code, 'server_busy');
  } finally {
    await server.close();
  }
});

limits('the 6th session from one address gets 429 session_limit; other addresses still get sessions', async () => {
  const server = await startServer({ iceGatheringTimeoutMs: 50 });
  try {
    const five = await Promise.all(Array.from({ length: 5 }, () => offer(server.app, '10.2.0.1')));
    assert.ok(five.every((r) => r.status === 200));
    const sixth = await offer(server.app, '10.2.0.1');
    assert.is(sixth.status, 429);
    assert.is((await sixth.json()).error.code, 'session_limit');
    assert.is((await offer(server.app, '10.2.0.2')).status, 200);

    const { sessionId } = await five[0].json();
    await server.app.fetch(new Request(`http://server/v1/webrtc/session/${sessionId}`, { method: 'DELETE' }), { ip: '10.2.0.1' });
    assert.is((await offer(server.app, '10.2.0.1')).status, 200, 'closing one frees its slot');
  } finally {
    await server.close();
  }
});

limits('concurrent offers never exceed the limit', async () => {
  const server = await startServer({ maxSessions: 10, maxSessionsPerIp: 1000, iceGatheringTimeoutMs: 50 });
  try {
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => offer(server.app, `10.3.0.${i}`)));
    assert.is(answers.filter((r) => r.status === 200).length, 10);
    assert.is(server.app.sessions.size, 10);
  } finally {
    await server.close();
  }
});

limits.run();

const lifecycle = suite('session lifecycle');

lifecycle('an idle session is closed by the sweep, and its channel with it', async () => {
  const server = await startServer({ inactivityTimeoutMs: 300, cleanupIntervalMs: 50 });
  try {
    const client = await server.client();
    assert.is((await client.request('health')).status, 'ok');
    await until(() => server.app.sessions.size === 0, 'the sweep to close the idle session');
    await until(() => !client.open, 'the client channel to close');
  } finally {
    await server.close();
  }
});

lifecycle('an offer answered but never connected (no candidates ever sent) expires with the offer', async () => {
  const server = await startServer({ offerTtlMs: 300, cleanupIntervalMs: 50 });
  const peer = rawPeer();
  try {
    const api = createSignalingClient({ url: server.url });
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({ trickle: true });
    // Neither side learns a candidate of the other: ICE has nothing to check, and the session nothing to connect.
    const answerSdp = await peer.answer(offerSdp.replace(/^a=candidate:.*\r\n/gm, ''));
    await api.webrtc.answer.mutate({ sessionId, answerSdp });
    assert.is((await api.webrtc.session.query({ sessionId })).state, 'ice_gathering');
    await until(() => server.app.sessions.size === 0, 'the unconnected session to expire', 3_000);
  } finally {
    peer.close();
    await server.close();
  }
});

lifecycle('an offer never answered expires', async () => {
  const server = await startServer({ offerTtlMs: 200, cleanupIntervalMs: 50, iceGatheringTimeoutMs: 50 });
  try {
    const response = await offer(server.app, '10.4.0.1');
    const { sessionId } = await response.json();
    await until(() => server.app.sessions.size === 0, 'the unanswered offer to expire');
    const info = await server.app.fetch(new Request(`http://server/v1/webrtc/session/${sessionId}`), { ip: '10.4.0.1' });
    assert.is(info.status, 404);
  } finally {
    await server.close();
  }
});

lifecycle('a client that closes its peer leaves its session suspended for the resume grace, then it goes', async () => {
  const server = await startServer({ resumeGraceMs: 300 });
  try {
    const client = await server.client();
    await client.request('health');
    assert.is(server.app.sessions.size, 1);
    client.pc.close();
    await until(() => server.app.sessions.get(client.sessionId).state === 'suspended', 'the session to wait for a resume', 3_000);
    await until(() => server.app.sessions.size === 0, 'the session to go after the grace', 3_000);
  } finally {
    await server.close();
  }
});

lifecycle('without a resume grace, a client that closes its peer has its session cleaned up promptly', async () => {
  const server = await startServer({ resumeGraceMs: 0 });
  try {
    const client = await server.client();
    await client.request('health');
    client.pc.close();
    await until(() => server.app.sessions.size === 0, 'the session to go when the peer closes', 3_000);
  } finally {
    await server.close();
  }
});

lifecycle('a suspended session makes room when its address reaches the session limit', async () => {
  const server = await startServer({ maxSessionsPerIp: 1 });
  try {
    const first = await server.client();
    await first.request('health');
    first.pc.close();
    await until(() => server.app.sessions.get(first.sessionId).state === 'suspended', 'the first session to be suspended');
    const second = await server.client();
    assert.is((await second.request('health')).status, 'ok', 'the new session works');
    assert.throws(() => server.app.sessions.get(first.sessionId), /No such session/, 'the suspended one was closed for it');
  } finally {
    await server.close();
  }
});

lifecycle('a closed session cancels its in-flight requests', async () => {
  const signals: AbortSignal[] = [];
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 50, onStart: (s) => signals.push(s) }) });
  try {
    const client = await server.client();
    const pending = client.request('chat', { messages: [{ role: 'user', content: 'a b c d e f g h i j' }] }).catch((e) => e);
    await until(() => signals.length === 1, 'the generation to start');
    server.app.sessions.close(client.sessionId);
    await until(() => signals[0].aborted, 'the handler to see the cancellation');
    assert.instance(await pending, AppError);
  } finally {
    await server.close();
  }
});

lifecycle.run();

const shutdown = suite('graceful shutdown');

shutdown('tells every channel, lets in-flight requests finish, then closes every peer', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 20 }) });
  try {
    const clients = [await server.client(), await server.client()];
    const notices: unknown[] = [];
    for (const client of clients) client.on('shutting_down', (data) => notices.push(data));
    const running = clients[0].request('chat', { messages: [{ role: 'user', content: 'one two three four five' }] });
    await until(() => server.app.dispatcher.inFlightCount === 1, 'the request to start');

    const closing = server.app.close(5_000);
    const late = await clients[1].request('get_params').catch((e: AppError) => e);
    assert.is((late as AppError).code, 'shutting_down', 'new requests are refused during shutdown');
    assert.is((await clients[1].request('health')).status, 'shutting_down', 'health answers, and says so');
    assert.is((await running).response, 'one two three four five', 'the in-flight request finished');
    await closing;
    assert.is(notices.length, 2, 'each channel was told');
    assert.is(server.app.sessions.size, 0);
    await until(() => clients.every((c) => !c.open), 'client channels to close');
  } finally {
    await server.close();
  }
});

shutdown('a tRPC rpc.* call that outlives the grace is answered shutting_down too', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 200 }) });
  try {
    const api = createSignalingClient({ url: server.url });
    const running = api.rpc.chat.mutate({ messages: [{ role: 'user', content: 'a b c d e f g h i j k l' }] }).catch((e) => e);
    await until(() => server.app.dispatcher.inFlightCount === 1, 'the call to start');
    await server.app.close(100);
    const error = (await running) as { data?: { appCode?: string } };
    assert.is(error.data?.appCode, 'shutting_down');
  } finally {
    await server.close();
  }
});

shutdown('cancels what outlives the grace period with shutting_down, and still answers it', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 200 }) });
  try {
    const client = await server.client();
    const running = client.request('chat', { messages: [{ role: 'user', content: 'a b c d e f g h i j k l' }] }).catch((e) => e);
    await until(() => server.app.dispatcher.inFlightCount === 1, 'the request to start');
    await server.app.close(100);
    const error = (await running) as AppError;
    assert.is(error.code, 'shutting_down');
  } finally {
    await server.close();
  }
});

shutdown.run();
