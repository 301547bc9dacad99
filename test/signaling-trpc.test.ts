import { TRPCClientError } from '@trpc/client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppRouter } from '../routers/index.ts';
import wrtc from '@roamhq/wrtc';
import { openPeer } from '../src/client/peer.ts';
import { createSignalingClient, type SignalingClient } from '../src/client/signaling.ts';
import type { ConfigInput } from '../src/config.ts';
import { sleep } from './fixtures/dev-server.ts';
import { FrameInbox, opened, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';
import { openSse, sseData, subscriptionUrl, type SseEvent, type SseStream } from './fixtures/sse.ts';

const test = suite('signaling over tRPC');

interface Ctx {
  server: TestServer;
  api: SignalingClient;
  peers: RawPeer[];
  streams: SseStream[];
  peer(): RawPeer;
}

/** A fresh server and tRPC client per test; every raw peer, SSE stream and the server are closed however it ends. */
async function withServer(body: (ctx: Ctx) => Promise<void>, overrides: ConfigInput = {}): Promise<void> {
  const server = await startServer({ maxSessionsPerIp: 100, ...overrides });
  const peers: RawPeer[] = [];
  const streams: SseStream[] = [];
  try {
    const api = createSignalingClient({ url: server.url });
    await body({
      server,
      api,
      peers,
      streams,
      peer: () => {
        const peer = rawPeer();
        peers.push(peer);
        return peer;
      },
    });
  } finally {
    for (const stream of streams) stream.close();
    await server.close(); // before the peers: see test/fixtures/server.ts
    for (const peer of peers) peer.close();
  }
}

type ClientError = TRPCClientError<AppRouter>;

/** The tRPC error `call` rejects with; fails the test if it resolves. */
async function rejection(call: Promise<unknown>, what: string): Promise<ClientError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof TRPCClientError) return error as ClientError;
    throw error;
  }
  assert.unreachable(`${what}: expected a tRPC error, got success`);
  throw new Error('unreachable');
}

function expectError(error: ClientError, code: string, appCode: string, what: string): void {
  assert.is(error.data?.code, code, `${what}: tRPC code (message: ${error.message})`);
  assert.is(error.data?.appCode, appCode, `${what}: appCode`);
}

function field(error: ClientError): unknown {
  return (error.data?.details as { field?: unknown } | undefined)?.field;
}

/** offer → answer (SDP without candidates) → trickle every client candidate as an RTCIceCandidateInit, then null. */
async function handshake(ctx: Ctx, peer = ctx.peer()): Promise<{ sessionId: string; peer: RawPeer }> {
  const { sessionId, offerSdp } = await ctx.api.webrtc.offer.mutate({ clientId: 'hand-driven' });
  const answerSdp = await peer.answer(offerSdp);
  await ctx.api.webrtc.answer.mutate({ sessionId, answerSdp });
  await peer.gathered;
  for (const candidate of peer.candidates) await ctx.api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
  await ctx.api.webrtc.ice.mutate({ sessionId, candidate: null });
  return { sessionId, peer };
}

async function healthOver(channel: RTCDataChannel, requestId: string): Promise<Record<string, unknown>> {
  const inbox = new FrameInbox(channel);
  return inbox.exchange(JSON.stringify({ action: 'health', request_id: requestId }), (f) => f.request_id === requestId);
}

test('an offer has a session id of its node and 128 random bits, the server candidates inline, the ICE servers and a Date expiry', () =>
  withServer(async ({ api }) => {
    const before = Date.now();
    const offers = [];
    for (let batch = 0; batch < 5; batch++) {
      const made = await Promise.all(Array.from({ length: 10 }, () => api.webrtc.offer.mutate({})));
      // Each offer is a live peer on the server; close them as we go.
      await Promise.all(made.map(({ sessionId }) => api.webrtc.close.mutate({ sessionId })));
      offers.push(...made);
    }
    const first = offers[0];
    assert.equal(Object.keys(first).sort(), ['eventsTicket', 'expiresAt', 'iceServers', 'offerSdp', 'resumeToken', 'resumed', 'sessionId']);
    assert.ok(first.resumeToken.length >= 32 && first.resumed === false, 'a resume token comes with every new session');
    assert.ok(first.expiresAt instanceof Date, 'expiresAt arrives as a Date (superjson)');
    assert.ok(first.expiresAt.getTime() > before, 'expiresAt is in the future');
    assert.equal(first.iceServers, []);
    assert.ok(first.offerSdp.startsWith('v=0'), 'offerSdp is an SDP');
    assert.match(first.offerSdp, /a=candidate:/, 'the server waited for ICE gathering: candidates are inline');
    assert.match(first.offerSdp, /m=application .* webrtc-datachannel/);
    for (const { sessionId, offerSdp } of offers) {
      assert.match(offerSdp, /a=candidate:/, 'every offer carries its candidates');
      // `<node>.<random>`: the node that holds it (for the instances of a cluster), then the capability itself.
      const [node, random] = sessionId.split('.');
      assert.match(node, /^[a-z0-9][a-z0-9-]*$/, 'the node id');
      assert.match(random, /^[A-Za-z0-9_-]+$/, 'the random part is base64url');
      assert.ok(random.length >= 22, `session id ${sessionId} carries at least 128 random bits (22 base64url chars)`);
    }
    assert.is(new Set(offers.map((o) => o.sessionId)).size, 50, '50 offers, 50 distinct ids');
  }),
);

test('a hand-driven peer completes the handshake with trickled ICE in every form and gets a health answer', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({ clientId: 'raw' });
    const answerSdp = await peer.answer(offerSdp);
    assert.not.match(answerSdp, /a=candidate:/, 'the answer sent carries no candidates: they must be trickled');
    const answered = await api.webrtc.answer.mutate({ sessionId, answerSdp });
    assert.is(answered.success, true);
    await peer.gathered;
    assert.ok(peer.candidates.length >= 1, 'the client gathered at least one candidate');

    const [first, ...rest] = peer.candidates;
    assert.equal(await api.webrtc.ice.mutate({ sessionId, candidate: first.toJSON() }), { success: true }, 'RTCIceCandidateInit');
    for (const candidate of rest) {
      assert.equal(await api.webrtc.ice.mutate({ sessionId, candidate: candidate.candidate }), { success: true }, 'bare string');
    }
    // The bare form is also accepted as an SDP attribute line.
    assert.equal(await api.webrtc.ice.mutate({ sessionId, candidate: `a=${first.candidate}` }), { success: true }, 'a= line');
    assert.equal(await api.webrtc.ice.mutate({ sessionId, candidate: null }), { success: true }, 'null ends the trickle');
    assert.equal(await api.webrtc.ice.mutate({ sessionId, candidate: { candidate: '' } }), { success: true }, 'empty candidate ends it too');

    const channel = await peer.channel('tabagent');
    assert.is(channel.label, 'tabagent');
    const answer = await healthOver(channel, '1');
    assert.is(answer.request_id, '1');
    assert.is(answer.type, 'health');
    assert.is(answer.status, 'ok');
    assert.type(answer.version, 'string');
    assert.type(answer.uptime_s, 'number');

    const info = await api.webrtc.session.query({ sessionId });
    assert.ok(info.counts.iceCandidates >= peer.candidates.length, `the trickled candidates were applied (${info.counts.iceCandidates})`);
  }),
);

test('webrtc.session shows the state moving from waiting_for_answer to connected, with its counts', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp, expiresAt } = await api.webrtc.offer.mutate({ clientId: 'watcher' });
    const waiting = await api.webrtc.session.query({ sessionId });
    assert.is(waiting.state, 'waiting_for_answer');
    assert.is(waiting.id, sessionId);
    assert.is(waiting.clientId, 'watcher');
    assert.is(waiting.expiresAt, expiresAt.toISOString());
    assert.ok(!Number.isNaN(Date.parse(waiting.createdAt)) && !Number.isNaN(Date.parse(waiting.lastActivity)));
    assert.equal(waiting.counts, { channels: 1, requests: 0, inFlight: 0, iceCandidates: 0, resumes: 0 });

    await api.webrtc.answer.mutate({ sessionId, answerSdp: await peer.answer(offerSdp) });
    const answered = await api.webrtc.session.query({ sessionId });
    assert.ok(['ice_gathering', 'connected'].includes(answered.state), `after the answer: ${answered.state}`);

    await peer.gathered;
    for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
    const channel = await peer.channel('tabagent');
    await healthOver(channel, 'h1');

    let info = await api.webrtc.session.query({ sessionId });
    assert.is(info.state, 'connected');
    assert.is(info.counts.requests, 1, 'one request served');
    assert.is(info.counts.inFlight, 0);
    assert.is(info.counts.channels, 1);

    // A channel the client opens is served too and counted.
    const own = peer.pc.createDataChannel('mine');
    // wrtc reports a channel made on a connected peer as open at once, without an open event.
    await opened(own);
    await healthOver(own, 'h2');
    info = await api.webrtc.session.query({ sessionId });
    assert.is(info.counts.channels, 2);
    assert.is(info.counts.requests, 2);

    assert.equal(await api.webrtc.close.mutate({ sessionId }), { success: true });
  }),
);

test('after webrtc.close the session is gone: session, answer, ice and close answer NOT_FOUND / not_found', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const { sessionId, peer } = await handshake(ctx);
    const channel = await peer.channel('tabagent');
    assert.equal(await api.webrtc.close.mutate({ sessionId }), { success: true });

    const error = await rejection(api.webrtc.session.query({ sessionId }), 'session after close');
    expectError(error, 'NOT_FOUND', 'not_found', 'session after close');
    assert.is(error.data?.httpStatus, 404);
    expectError(await rejection(api.webrtc.close.mutate({ sessionId }), 'close twice'), 'NOT_FOUND', 'not_found', 'close twice');
    expectError(
      await rejection(api.webrtc.ice.mutate({ sessionId, candidate: null }), 'ice after close'),
      'NOT_FOUND',
      'not_found',
      'ice after close',
    );
    await until(() => channel.readyState === 'closed', 'the server to close the data channel');
  }),
);

test('a replayed answer is a CONFLICT with appCode conflict', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
    const answerSdp = await peer.answer(offerSdp);
    await api.webrtc.answer.mutate({ sessionId, answerSdp });
    const error = await rejection(api.webrtc.answer.mutate({ sessionId, answerSdp }), 'replayed answer');
    expectError(error, 'CONFLICT', 'conflict', 'replayed answer');
    assert.is(error.data?.httpStatus, 409);
    // The session is unharmed by the replay.
    await peer.gathered;
    for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
    assert.is((await healthOver(await peer.channel(), 'after-replay')).status, 'ok');
  }),
);

test('two answers racing for one session: exactly one wins, the other is a CONFLICT', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
    const answerSdp = await peer.answer(offerSdp);
    const results = await Promise.allSettled([
      api.webrtc.answer.mutate({ sessionId, answerSdp }),
      api.webrtc.answer.mutate({ sessionId, answerSdp }),
    ]);
    assert.is(results.filter((r) => r.status === 'fulfilled').length, 1, 'one answer is applied');
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(lost && lost.reason instanceof TRPCClientError);
    expectError(lost.reason as ClientError, 'CONFLICT', 'conflict', 'the racing answer');
  }),
);

test('candidates trickled before the answer are held and applied once it arrives', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
    const answerSdp = await peer.answer(offerSdp);
    await peer.gathered;
    for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
    assert.is((await api.webrtc.session.query({ sessionId })).counts.iceCandidates, 0, 'held, not applied, before the answer');
    await api.webrtc.answer.mutate({ sessionId, answerSdp });
    assert.is((await api.webrtc.session.query({ sessionId })).counts.iceCandidates, peer.candidates.length, 'applied with the answer');
    assert.is((await healthOver(await peer.channel(), 'early')).status, 'ok');
  }),
);

test('more than 64 candidates before an answer is a CONFLICT', () =>
  withServer(async ({ api }) => {
    const { sessionId } = await api.webrtc.offer.mutate({});
    const candidate = 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host';
    for (let i = 0; i < 64; i++) await api.webrtc.ice.mutate({ sessionId, candidate });
    expectError(await rejection(api.webrtc.ice.mutate({ sessionId, candidate }), '65th'), 'CONFLICT', 'conflict', 'the 65th early candidate');
  }),
);

test('a garbage answer SDP is BAD_REQUEST invalid_request, and the session still takes a correct answer', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
    const error = await rejection(api.webrtc.answer.mutate({ sessionId, answerSdp: 'this is not an SDP' }), 'garbage SDP');
    expectError(error, 'BAD_REQUEST', 'invalid_request', 'garbage SDP');
    assert.is(field(error), 'answerSdp');
    assert.is((await api.webrtc.session.query({ sessionId })).state, 'waiting_for_answer', 'still waiting for an answer');

    await api.webrtc.answer.mutate({ sessionId, answerSdp: await peer.answer(offerSdp) });
    await peer.gathered;
    for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
    assert.is((await healthOver(await peer.channel(), 'after-garbage')).status, 'ok');
  }),
);

test('an answer that fails (the session gone meanwhile) fails the open, and nothing rejects later unheard', () =>
  withServer(async ({ server, api }) => {
    const unheard: unknown[] = [];
    const onUnhandled = (reason: unknown) => unheard.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // The session is closed between the offer and the answer, as when the instance holding it dies.
      const { answer, ice, close } = api.webrtc;
      const closing = {
        webrtc: {
          answer,
          ice,
          close,
          offer: {
            mutate: async (input: Parameters<typeof api.webrtc.offer.mutate>[0]) => {
              const offer = await api.webrtc.offer.mutate(input);
              await api.webrtc.close.mutate({ sessionId: offer.sessionId });
              return offer;
            },
          },
        },
      } as unknown as SignalingClient;
      const failed = await rejection(openPeer(closing, { RTCPeerConnection: wrtc.RTCPeerConnection, timeoutMs: 200, followEvents: false }), 'open');
      expectError(failed, 'NOT_FOUND', 'not_found', 'the answer');
      await sleep(400);
      assert.equal(unheard, [], 'no rejection left behind once the data channel\'s wait ran out');
      assert.is(server.app.sessions.size, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }));

test('ICE for an unknown session is NOT_FOUND / not_found', () =>
  withServer(async ({ api }) => {
    const unknown = 'A'.repeat(24);
    const candidate = 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host';
    expectError(await rejection(api.webrtc.ice.mutate({ sessionId: unknown, candidate }), 'ice'), 'NOT_FOUND', 'not_found', 'ice');
    expectError(
      await rejection(api.webrtc.answer.mutate({ sessionId: unknown, answerSdp: 'v=0' }), 'answer'),
      'NOT_FOUND',
      'not_found',
      'answer',
    );
    expectError(await rejection(api.webrtc.session.query({ sessionId: unknown }), 'session'), 'NOT_FOUND', 'not_found', 'session');
  }),
);

test('an unusable ICE candidate is BAD_REQUEST invalid_request naming candidate', () =>
  withServer(async (ctx) => {
    const { api } = ctx;
    const peer = ctx.peer();
    const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
    // A string that is not a candidate line is refused before the answer too.
    let error = await rejection(api.webrtc.ice.mutate({ sessionId, candidate: 'hello' }), 'not a candidate line');
    expectError(error, 'BAD_REQUEST', 'invalid_request', 'not a candidate line');
    assert.is(field(error), 'candidate');

    await api.webrtc.answer.mutate({ sessionId, answerSdp: await peer.answer(offerSdp) });
    error = await rejection(api.webrtc.ice.mutate({ sessionId, candidate: 'candidate:garbage' }), 'garbage candidate string');
    expectError(error, 'BAD_REQUEST', 'invalid_request', 'garbage candidate string');
    assert.is(field(error), 'candidate');
    error = await rejection(
      api.webrtc.ice.mutate({ sessionId, candidate: { candidate: 'candidate:x y z', sdpMid: '0' } }),
      'garbage candidate object',
    );
    expectError(error, 'BAD_REQUEST', 'invalid_request', 'garbage candidate object');
    assert.is(field(error), 'candidate');

    // The session survives the garbage.
    await peer.gathered;
    for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
    assert.is((await healthOver(await peer.channel(), 'after-bad-ice')).status, 'ok');
  }),
);

test('input that breaks a procedure schema is BAD_REQUEST invalid_request naming the field', () =>
  withServer(async ({ api }) => {
    const loose = api as unknown as {
      webrtc: {
        session: { query(input: unknown): Promise<unknown> };
        answer: { mutate(input: unknown): Promise<unknown> };
        ice: { mutate(input: unknown): Promise<unknown> };
        offer: { mutate(input: unknown): Promise<unknown> };
      };
    };
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['session without sessionId', () => loose.webrtc.session.query({}), 'sessionId'],
      ['answer without sessionId', () => loose.webrtc.answer.mutate({ answerSdp: 'v=0' }), 'sessionId'],
      ['answer with a numeric answerSdp', () => loose.webrtc.answer.mutate({ sessionId: 'abc', answerSdp: 42 }), 'answerSdp'],
      ['answer with an empty answerSdp', () => loose.webrtc.answer.mutate({ sessionId: 'abc', answerSdp: '' }), 'answerSdp'],
      ['ice with a numeric sdpMLineIndex string', () => loose.webrtc.ice.mutate({ sessionId: 'abc', candidate: { sdpMLineIndex: 'x' } }), 'candidate'],
      ['offer with a numeric clientId', () => loose.webrtc.offer.mutate({ clientId: 5 }), 'clientId'],
      ['session with a 200-char sessionId', () => loose.webrtc.session.query({ sessionId: 'x'.repeat(200) }), 'sessionId'],
    ];
    for (const [what, call, name] of cases) {
      const error = await rejection(call(), what);
      expectError(error, 'BAD_REQUEST', 'invalid_request', what);
      const named = String(field(error));
      assert.ok(named === name || named.startsWith(`${name}.`), `${what}: details.field names ${name} (got ${named})`);
      assert.ok(error.message.includes(name), `${what}: the message names ${name}: ${error.message}`);
    }
  }),
);

test('a tRPC request body over maxBodyBytes is PAYLOAD_TOO_LARGE, as on the REST routes', () =>
  withServer(
    async ({ api, server }) => {
      const { sessionId } = await api.webrtc.offer.mutate({});
      const error = await rejection(api.webrtc.answer.mutate({ sessionId, answerSdp: `v=0\r\n${'a=x\r\n'.repeat(1000)}` }), '5 KB answer');
      expectError(error, 'PAYLOAD_TOO_LARGE', 'payload_too_large', 'a 5 KB body with maxBodyBytes 1024');
      assert.is(error.data?.httpStatus, 413);
      const rest = await fetch(`${server.url}/v1/webrtc/answer/${sessionId}`, { method: 'POST', body: JSON.stringify({ answerSdp: 'x'.repeat(5000) }) });
      assert.is(rest.status, 413, 'the REST route refuses the same body');
    },
    { maxBodyBytes: 1024 },
  ),
);

/** Subscribes to `webrtc.events` by raw SSE. */
async function events(ctx: Ctx, input: { sessionId: string; lastEventId?: string }, headers?: Record<string, string>) {
  const stream = await openSse(subscriptionUrl(ctx.server.url, 'webrtc.events', input), headers);
  ctx.streams.push(stream);
  return stream;
}

type Signal = { kind: 'state'; state: string } | { kind: 'candidate'; candidate: RTCIceCandidateInit | null };
const isData = (event: SseEvent) => event.event === 'message';
const stateIs = (state: string) => (event: SseEvent) => isData(event) && sseData<Signal>(event).kind === 'state' && (sseData<Signal>(event) as { state: string }).state === state;

test('webrtc.events streams numbered state and candidate events over SSE, and resumes after lastEventId', () =>
  withServer(async (ctx) => {
    const { sessionId, peer } = await handshake(ctx);
    await peer.channel();
    const stream = await events(ctx, { sessionId });
    assert.is(stream.response.status, 200);
    assert.match(stream.response.headers.get('content-type') ?? '', /^text\/event-stream/);

    const gathering = await stream.next(stateIs('ice_gathering'), 'the ice_gathering state event');
    const connected = await stream.next(stateIs('connected'), 'the connected state event');
    assert.ok(gathering.id && /^\d+$/.test(gathering.id), `state events have an id: line (${gathering.id})`);
    assert.ok(connected.id && Number(connected.id) > Number(gathering.id), 'ids increase');
    const data = stream.events.filter(isData);
    assert.ok(data.every((event) => event.id !== undefined && event.id !== ''), 'every data event has an id');
    const candidates = data.map((event) => sseData<Signal>(event)).filter((signal) => signal.kind === 'candidate');
    assert.ok(
      candidates.some((signal) => signal.kind === 'candidate' && signal.candidate?.candidate?.startsWith('candidate:')),
      'the server candidates are in the log',
    );
    stream.close();

    // Resuming after the ice_gathering event skips it and everything before it.
    const resumed = await events(ctx, { sessionId, lastEventId: gathering.id });
    const first = await resumed.next(isData, 'the first resumed event');
    assert.is(first.id, String(Number(gathering.id) + 1), 'resumes right after lastEventId');
    await resumed.next(stateIs('connected'), 'connected after resuming');
    assert.not.ok(resumed.events.some(stateIs('ice_gathering')), 'the event already seen is not sent again');
    assert.ok(resumed.events.filter(isData).every((event) => Number(event.id) > Number(gathering.id)));
    resumed.close();

    // EventSource resumes with the Last-Event-ID header; tRPC folds it into the input.
    const byHeader = await events(ctx, { sessionId }, { 'last-event-id': connected.id! });
    await ctx.api.webrtc.close.mutate({ sessionId });
    const next = await byHeader.next(isData, 'the first event after Last-Event-ID');
    assert.equal(sseData(next), { kind: 'state', state: 'disconnected' }, 'the next event is the one after Last-Event-ID');
    await byHeader.end();
    assert.not.ok(byHeader.events.filter(isData).some((event) => Number(event.id) <= Number(connected.id)), 'nothing at or before Last-Event-ID');
  }),
);

test('webrtc.events for an unknown session is a not_found error', () =>
  withServer(async (ctx) => {
    const stream = await events(ctx, { sessionId: 'B'.repeat(24) });
    // SSE has committed to 200 before the procedure runs: the error comes as tRPC's serialized-error event.
    assert.is(stream.response.status, 200);
    const error = await stream.next((event) => event.event === 'serialized-error', 'a serialized-error event');
    const shape = sseData<{ message: string; data: { appCode: string; code: string; httpStatus: number } }>(error);
    assert.is(shape.data.appCode, 'not_found');
    assert.is(shape.data.code, 'NOT_FOUND');
    assert.is(shape.data.httpStatus, 404);
    assert.match(shape.message, /No such session/);
    await stream.end();
    assert.not.ok(stream.events.some(isData), 'no data events');
  }),
);

test('webrtc.events yields disconnected and ends after webrtc.close', () =>
  withServer(async (ctx) => {
    const { sessionId, peer } = await handshake(ctx);
    await peer.channel();
    const stream = await events(ctx, { sessionId });
    await stream.next(stateIs('connected'), 'connected');
    await ctx.api.webrtc.close.mutate({ sessionId });
    const last = await stream.next(stateIs('disconnected'), 'the disconnected state event');
    assert.ok(last.id, 'disconnected is numbered too');
    await stream.end();
    assert.ok(stream.events.some((event) => event.event === 'return'), 'tRPC says the subscription returned');
  }),
);

test('rpc.health, rpc.set_params and rpc.get_params answer over tRPC with the data-channel shapes', () =>
  withServer(async ({ api }) => {
    const health = await api.rpc.health.query();
    assert.is(health.type, 'health');
    assert.is(health.status, 'ok');
    assert.type(health.version, 'string');
    assert.not.ok('request_id' in health, 'no request_id over tRPC');

    const set = await api.rpc.set_params.mutate({ params: { temperature: 0.4, max_tokens: 64 } });
    assert.equal(set, { type: 'params', params: { temperature: 0.4, max_tokens: 64 } });
    const merged = await api.rpc.set_params.mutate({ params: { top_p: 0.9 } });
    assert.equal(merged.params, { temperature: 0.4, max_tokens: 64, top_p: 0.9 }, 'set_params merges');
    assert.equal(await api.rpc.get_params.query(), { type: 'params', params: { temperature: 0.4, max_tokens: 64, top_p: 0.9 } });
    const replaced = await api.rpc.set_params.mutate({ params: { seed: 7 }, replace: true });
    assert.equal(replaced.params, { seed: 7 }, 'replace: true replaces');
  }),
);

test('rpc.chat with its upstream unreachable is SERVICE_UNAVAILABLE / backend_unavailable', () =>
  withServer(
    async ({ api }) => {
      const error = await rejection(api.rpc.chat.mutate({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), 'rpc.chat');
      expectError(error, 'SERVICE_UNAVAILABLE', 'backend_unavailable', 'rpc.chat');
      assert.is(error.data?.httpStatus, 503);
      assert.match(error.message, /TABAGENT_UPSTREAM_URL/);
    },
    // Nothing listens on port 9 (discard): a configured upstream that is down.
    { upstreamUrl: 'http://127.0.0.1:9' },
  ),
);

test('rpc.set_params with an out-of-range temperature is invalid_request naming params.temperature', () =>
  withServer(async ({ api }) => {
    const error = await rejection(api.rpc.set_params.mutate({ params: { temperature: 9 } }), 'temperature 9');
    expectError(error, 'BAD_REQUEST', 'invalid_request', 'temperature 9');
    assert.is(field(error), 'params.temperature');
    assert.equal((await api.rpc.get_params.query()).params, {}, 'nothing was stored');
  }),
);

test.run();
