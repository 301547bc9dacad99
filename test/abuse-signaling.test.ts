/**
 * Abusive signaling against a real server with real wrtc peers, over tRPC and the REST routes: garbage and cut
 * SDP answers, replayed answers, hostile ICE candidates, malformed bodies and thousands of concurrent calls. Every
 * call must get a typed error (a code from the error table, with its status; never `internal`), the server must
 * neither crash nor keep what the abuse created, and a healthy session must keep answering throughout.
 */
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import superjson from 'superjson';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppRouter } from '../routers/index.ts';
import { createSignalingClient, type SignalingClient } from '../src/client/signaling.ts';
import type { TabAgent } from '../src/client/index.ts';
import type { ConfigInput } from '../src/config.ts';
import { ERROR_CODES, isErrorCode } from '../src/errors.ts';
import { FrameInbox, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer, type TestServer } from './fixtures/server.ts';

const test = suite('abusive signaling');

/**
 * What escaped to the process: a wrtc promise without a home, a throw in a callback. These would end the process
 * (and the run) unnoticed as a test failure; recorded here, they fail the test that caused them.
 */
const escaped: string[] = [];
process.on('unhandledRejection', (error) => escaped.push(`unhandled rejection: ${String((error as Error)?.stack ?? error)}`));
process.on('uncaughtException', (error) => escaped.push(`uncaught exception: ${String(error?.stack ?? error)}`));

type Transport = 'trpc' | 'rest';
const TRANSPORTS: Transport[] = ['trpc', 'rest'];

/** A signaling call's outcome, the same shape for both transports. */
type Outcome = { ok: true; value: Record<string, unknown> } | { ok: false; status: number; code: string; message: string; field?: unknown };

/** The signaling calls on both transports, typed loosely (the abuse sends what the types forbid). */
interface Calls {
  answer(via: Transport, sessionId: string, answerSdp: string): Promise<Outcome>;
  ice(via: Transport, sessionId: string, candidate: unknown): Promise<Outcome>;
  info(via: Transport, sessionId: string): Promise<Outcome>;
  close(via: Transport, sessionId: string): Promise<Outcome>;
  /** A trickle offer. */
  offer(via: Transport): Promise<Outcome>;
}

/** The calls to the server at `url`, tRPC over httpLink and superjson as the client library does it, through `fetchImpl`. */
function callsTo(url: string, fetchImpl: typeof fetch = fetch): Calls {
  const api = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${url}/trpc`, transformer: superjson, fetch: fetchImpl })] });
  const { webrtc } = api as unknown as { webrtc: Record<string, { mutate(input: unknown): Promise<unknown>; query(input: unknown): Promise<unknown> }> };
  const rest = (method: string, path: string, payload?: unknown) =>
    restOutcome(fetchImpl(`${url}${path}`, { method, body: payload === undefined ? undefined : JSON.stringify(payload) }));
  return {
    answer: (via, sessionId, answerSdp) =>
      via === 'trpc' ? outcomeOf(webrtc.answer.mutate({ sessionId, answerSdp })) : rest('POST', `/v1/webrtc/answer/${sessionId}`, { answerSdp }),
    ice: (via, sessionId, candidate) =>
      via === 'trpc' ? outcomeOf(webrtc.ice.mutate({ sessionId, candidate })) : rest('POST', `/v1/webrtc/ice/${sessionId}`, { candidate }),
    info: (via, sessionId) => (via === 'trpc' ? outcomeOf(webrtc.session.query({ sessionId })) : rest('GET', `/v1/webrtc/session/${sessionId}`)),
    close: (via, sessionId) => (via === 'trpc' ? outcomeOf(webrtc.close.mutate({ sessionId })) : rest('DELETE', `/v1/webrtc/session/${sessionId}`)),
    offer: (via) => (via === 'trpc' ? outcomeOf(webrtc.offer.mutate({ trickle: true })) : rest('POST', '/v1/webrtc/offer', { trickle: true })),
  };
}

interface Ctx extends Calls {
  server: TestServer;
  /** The project's own signaling client, for the well-behaved steps. */
  api: SignalingClient;
  /** A raw wrtc peer, closed after the server when the test ends. */
  peer(): RawPeer;
  /** A session whose raw peer is connected over ICE it trickled, with its `tabagent` channel answering. */
  connected(): Promise<{ sessionId: string; peer: RawPeer; inbox: FrameInbox }>;
  /** The server's open sessions. */
  size(): number;
}

/** A fresh server per test; its peers and the server are closed however the test ends, and nothing may escape. */
async function withServer(body: (ctx: Ctx) => Promise<void>, overrides: ConfigInput = {}): Promise<void> {
  const server = await startServer({ maxSessionsPerIp: 1000, ...overrides });
  const peers: RawPeer[] = [];
  const api = createSignalingClient({ url: server.url });
  const ctx: Ctx = {
    ...callsTo(server.url),
    server,
    api,
    peer() {
      const peer = rawPeer();
      peers.push(peer);
      return peer;
    },
    async connected() {
      const peer = ctx.peer();
      const { sessionId, offerSdp } = await api.webrtc.offer.mutate({});
      await api.webrtc.answer.mutate({ sessionId, answerSdp: await peer.answer(offerSdp) });
      await trickle(ctx, sessionId, peer);
      const inbox = new FrameInbox(await peer.channel());
      assert.is((await health(inbox, 'connected')).status, 'ok');
      return { sessionId, peer, inbox };
    },
    size: () => server.app.sessions.size,
  };
  try {
    await body(ctx);
  } finally {
    await server.close(); // before the peers: see test/fixtures/server.ts
    for (const peer of peers) peer.close();
  }
  // wrtc reports a failure of a closing peer a little later; give it the time to surface here.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(escaped.splice(0), [], 'nothing escaped to the process');
}

/** A tRPC call's outcome; anything but a tRPC error fails the test. */
async function outcomeOf(call: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: (await call) as Record<string, unknown> };
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const { data, message } = error as TRPCClientError<AppRouter>;
    return { ok: false, status: data?.httpStatus ?? 0, code: String(data?.appCode), message, field: (data?.details as { field?: unknown })?.field };
  }
}

/** A REST call's outcome: its JSON answer, or its `{ error: { code, message, details? } }` with the status. */
async function restOutcome(call: Promise<Response>): Promise<Outcome> {
  const response = await call;
  const text = await response.text();
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `JSON answer (status ${response.status}: ${text.slice(0, 200)})`);
  const body = JSON.parse(text) as Record<string, unknown> & { error?: { code: string; message: string; details?: { field?: unknown } } };
  if (response.ok) return { ok: true, value: body };
  assert.ok(body.error, `an error body with status ${response.status}: ${text.slice(0, 200)}`);
  return { ok: false, status: response.status, code: body.error.code, message: body.error.message, field: body.error.details?.field };
}

/** A typed failure: a code from the table (not `internal`), its status, a message. */
function failure(outcome: Outcome, what: string): Extract<Outcome, { ok: false }> {
  if (outcome.ok) assert.unreachable(`${what}: expected an error, got ${JSON.stringify(outcome.value).slice(0, 200)}`);
  const failed = outcome as Extract<Outcome, { ok: false }>;
  assert.ok(isErrorCode(failed.code) && failed.code !== 'internal', `${what}: a typed code, got ${failed.code} (${failed.message})`);
  assert.is(failed.status, ERROR_CODES[failed.code as keyof typeof ERROR_CODES], `${what}: the status of ${failed.code}`);
  assert.ok(failed.message.length > 0, `${what}: a message`);
  return failed;
}

function expectFailure(outcome: Outcome, code: string, what: string, field?: string): Extract<Outcome, { ok: false }> {
  const failed = failure(outcome, what);
  assert.is(failed.code, code, `${what}: code (message: ${failed.message})`);
  if (field !== undefined) assert.ok(String(failed.field).startsWith(field), `${what}: details.field names ${field} (got ${String(failed.field)})`);
  return failed;
}

function expectOk(outcome: Outcome, what: string): Record<string, unknown> {
  if (!outcome.ok) assert.unreachable(`${what}: expected success, got ${outcome.status} ${outcome.code}: ${outcome.message}`);
  return (outcome as Extract<Outcome, { ok: true }>).value;
}

async function stateOf(ctx: Ctx, sessionId: string): Promise<string> {
  const outcome = await ctx.info('trpc', sessionId);
  if (!outcome.ok) return expectFailure(outcome, 'not_found', 'session info').code;
  return String(outcome.value.state);
}

async function health(inbox: FrameInbox, requestId: string): Promise<Record<string, unknown>> {
  return inbox.exchange(JSON.stringify({ action: 'health', request_id: requestId }), (frame) => frame.request_id === requestId);
}

/** Trickles every candidate the raw peer gathered, then the end of candidates. */
async function trickle(ctx: Ctx, sessionId: string, peer: RawPeer): Promise<void> {
  await peer.gathered;
  for (const candidate of peer.candidates) await ctx.api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
  await ctx.api.webrtc.ice.mutate({ sessionId, candidate: null });
}

/** A trickle offer (no wait for the server's candidates) and the raw peer's real answer to it. */
async function offered(ctx: Ctx): Promise<{ sessionId: string; resumeToken: string; offerSdp: string; answerSdp: string; peer: RawPeer }> {
  const peer = ctx.peer();
  const { sessionId, resumeToken, offerSdp } = await ctx.api.webrtc.offer.mutate({ trickle: true });
  return { sessionId, resumeToken, offerSdp, answerSdp: await peer.answer(offerSdp), peer };
}

/** The server's peer for a session, to see it closed once the session ends. */
function serverPeer(ctx: Ctx, sessionId: string): RTCPeerConnection {
  return ctx.server.app.sessions.get(sessionId).pc;
}

/** Sessions the burst test allows: the healthy one and the offers that fit beside it. */
const MAX_SESSIONS = 16;
/** Long enough that no offer of the burst expires during it. */
const OFFER_TTL_MS = 30_000;

const CANDIDATE = (port: number) => `candidate:${port} 1 udp 2122260223 127.0.0.1 ${port} typ host`;

/** Edits of a real answer that wrtc refuses before applying anything: the session can still take its answer. */
const HARMLESS: Array<[string, (answer: string) => string]> = [
  ['random bytes', () => randomBytes(400).toString('latin1')],
  ['random text', () => 'the quick brown fox '.repeat(40)],
  ['whitespace', () => ' \r\n\t '],
  ['emoji', () => '🙂'.repeat(200)],
  ['an m= line with a bad port', (sdp) => sdp.replace(/^m=application \d+/m, 'm=application x')],
  ['another mid', (sdp) => sdp.replace(/^a=mid:.*$/m, 'a=mid:7')],
  ['a fingerprint that is not hex', (sdp) => sdp.replace(/^a=fingerprint:(\S+) .*$/m, 'a=fingerprint:$1 ZZ:ZZ')],
  ['no fingerprint', (sdp) => sdp.replace(/^a=fingerprint:.*\r\n/m, '')],
  ['no ICE credentials', (sdp) => sdp.replace(/^a=ice-(ufrag|pwd):.*\r\n/gm, '')],
  ['the session lines only', (sdp) => sdp.split('\r\n').slice(0, 4).join('\r\n') + '\r\n'],
  ['128 KiB of attribute lines (the most an answer may be)', () => `v=0\r\n${'a=x\r\n'.repeat(26_213)}`],
];

/** Edits that wrtc applies halfway before refusing: its peer then refuses every later answer too. */
const BREAKING: Array<[string, (answer: string, offer: string) => string]> = [
  ['the offer sent back', (_sdp, offer) => offer],
  ['an ice-pwd too short', (sdp) => sdp.replace(/^a=ice-pwd:.*$/m, 'a=ice-pwd:short')],
  ['a=setup:actpass (only an offer may leave the DTLS role open)', (sdp) => sdp.replace(/^a=setup:.*$/m, 'a=setup:actpass')],
  ['the BUNDLE group twice', (sdp) => sdp.replace(/^(a=group:BUNDLE .*\r\n)/m, '$1$1')],
];

test('garbage answers are 400 invalid_request naming answerSdp; the session then takes its real answer, or ends if the peer broke', () =>
  withServer(async (ctx) => {
    for (const via of TRANSPORTS) {
      // Harmless garbage, one session: it still waits for its answer, and the real one connects it.
      const peer = ctx.peer();
      const { sessionId, offerSdp } = await ctx.api.webrtc.offer.mutate({});
      const answerSdp = await peer.answer(offerSdp);
      for (const [what, edit] of HARMLESS) {
        const failed = expectFailure(await ctx.answer(via, sessionId, edit(answerSdp)), 'invalid_request', `${via}: ${what}`, 'answerSdp');
        assert.not.match(failed.message, /ask for a new one/, `${via}: ${what}: the offer can still be answered`);
        assert.is(await stateOf(ctx, sessionId), 'waiting_for_answer', `${via}: ${what}: still waiting for the answer`);
      }
      expectFailure(await ctx.answer(via, sessionId, ''), 'invalid_request', `${via}: an empty answer`, 'answerSdp');
      expectOk(await ctx.answer(via, sessionId, answerSdp), `${via}: the real answer after the garbage`);
      await trickle(ctx, sessionId, peer);
      assert.is((await health(new FrameInbox(await peer.channel()), `after-garbage-${via}`)).status, 'ok');

      // Breaking garbage, a session each: the error says the offer is spent, and the session is gone with its peer.
      for (const [what, edit] of BREAKING) {
        const before = ctx.size();
        const broken = await offered(ctx);
        const pc = serverPeer(ctx, broken.sessionId);
        const failed = expectFailure(await ctx.answer(via, broken.sessionId, edit(broken.answerSdp, broken.offerSdp)), 'invalid_request', `${via}: ${what}`, 'answerSdp');
        assert.match(failed.message, /ask for a new one/, `${via}: ${what}: the error says to start again`);
        assert.is(await stateOf(ctx, broken.sessionId), 'not_found', `${via}: ${what}: the session ended`);
        expectFailure(await ctx.answer(via, broken.sessionId, broken.answerSdp), 'not_found', `${via}: ${what}: the real answer comes too late`);
        expectFailure(await ctx.ice(via, broken.sessionId, CANDIDATE(9)), 'not_found', `${via}: ${what}: ICE for the ended session`);
        assert.is(ctx.size(), before, `${via}: ${what}: no session is left behind`);
        assert.is(pc.connectionState, 'closed', `${via}: ${what}: the server's peer is closed`);
      }

      // Another session's answer is a valid answer: the server cannot tell, and takes it. The session then has its
      // answer (the right one is a conflict), and closing it ends it.
      const before = ctx.size();
      const victim = await offered(ctx);
      const other = await offered(ctx);
      expectOk(await ctx.answer(via, victim.sessionId, other.answerSdp), `${via}: another session's answer`);
      assert.is(await stateOf(ctx, victim.sessionId), 'ice_gathering');
      expectFailure(await ctx.answer(via, victim.sessionId, victim.answerSdp), 'conflict', `${via}: the right answer after another's`);
      for (const { sessionId: id } of [victim, other]) expectOk(await ctx.close(via, id), `${via}: close`);
      assert.is(ctx.size(), before, `${via}: both sessions closed`);
    }
  }),
);

test('a real answer cut at many points: each cut is refused with invalid_request or taken; a refused one leaves the session answerable or ends it', () =>
  withServer(
    async (ctx) => {
      const tally = { kept: 0, ended: 0, taken: 0 };
      let current = await offered(ctx);
      const cuts = cutPoints(current.answerSdp);
      for (const [index, cut] of cuts.entries()) {
        const via = TRANSPORTS[index % 2];
        const { sessionId, answerSdp } = current;
        const what = `${via}: cut at ${cut} of ${answerSdp.length}`;
        const outcome = await ctx.answer(via, sessionId, answerSdp.slice(0, cut));
        const state = await stateOf(ctx, sessionId);
        if (outcome.ok) {
          // A cut inside a value can still be a valid answer (say a shorter a=max-message-size): it is the answer.
          assert.ok(['ice_gathering', 'connected'].includes(state), `${what}: taken, so answered (state ${state})`);
          tally.taken++;
        } else {
          const failed = expectFailure(outcome, 'invalid_request', what, 'answerSdp');
          if (state === 'waiting_for_answer') {
            assert.not.match(failed.message, /ask for a new one/, `${what}: kept, and says so`);
            tally.kept++;
            continue;
          }
          assert.is(state, 'not_found', `${what}: refused, so either still waiting or ended`);
          assert.match(failed.message, /ask for a new one/, `${what}: ended, and says so`);
          tally.ended++;
        }
        if (state !== 'not_found') expectOk(await ctx.close(via, sessionId), `${what}: close`);
        current = await offered(ctx);
      }
      // Every harmless cut was kept on one session: had one of them broken its peer, the real answer would fail.
      expectOk(await ctx.answer('rest', current.sessionId, current.answerSdp), 'the real answer after every kept cut');
      await trickle(ctx, current.sessionId, current.peer);
      assert.is((await health(new FrameInbox(await current.peer.channel()), 'after-cuts')).status, 'ok');
      assert.ok(tally.kept >= cuts.length / 2, `most cuts are refused and kept (${JSON.stringify(tally)})`);
      assert.is(ctx.size(), 1, 'only the connected session is left');
    },
    { iceGatheringTimeoutMs: 200 },
  ),
);

/** Every line end of an SDP, the middle of every line, and every 16th byte. */
function cutPoints(sdp: string): number[] {
  const cuts = new Set<number>();
  let start = 0;
  for (let end = sdp.indexOf('\r\n'); end >= 0; start = end + 2, end = sdp.indexOf('\r\n', start)) {
    cuts.add(end + 2).add(end + 1).add(end).add(start + Math.floor((end - start) / 2));
  }
  for (let at = 1; at < sdp.length; at += 16) cuts.add(at);
  cuts.delete(sdp.length);
  return [...cuts].filter((at) => at > 0).sort((a, b) => a - b);
}

test('replayed answers: after the connection, racing each other, racing a resume, after close: typed errors, the session unharmed', () =>
  withServer(async (ctx) => {
    // After the session connected, with its own answer: a conflict on every route, and it keeps serving.
    const live = await ctx.connected();
    const liveAnswer = live.peer.pc.localDescription!.sdp;
    for (const via of TRANSPORTS) expectFailure(await ctx.answer(via, live.sessionId, liveAnswer), 'conflict', `${via}: an answer after connected`);
    const snake = await restOutcome(fetch(`${ctx.server.url}/v1/webrtc/answer`, { method: 'POST', body: JSON.stringify({ session_id: live.sessionId, sdp: liveAnswer }) }));
    expectFailure(snake, 'conflict', 'snake_case answer after connected');
    assert.is((await health(live.inbox, 'after-replays')).status, 'ok');
    assert.is(await stateOf(ctx, live.sessionId), 'connected');

    // Twenty copies of one answer at once, over both transports: one is applied, the rest are conflicts.
    const raced = await offered(ctx);
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => ctx.answer(TRANSPORTS[i % 2], raced.sessionId, raced.answerSdp)));
    assert.is(outcomes.filter((o) => o.ok).length, 1, 'exactly one answer is applied');
    for (const outcome of outcomes.filter((o) => !o.ok)) expectFailure(outcome, 'conflict', 'a racing copy');
    await trickle(ctx, raced.sessionId, raced.peer);
    assert.is((await health(new FrameInbox(await raced.peer.channel()), 'raced')).status, 'ok');

    // An answer racing a resume of its session: whichever wins, the session ends up waiting for the answer to the
    // resume's offer, and takes it. (An answer to the old peer used to mark the new one answered.)
    for (let round = 0; round < 8; round++) {
      const { sessionId, resumeToken, answerSdp } = await offered(ctx);
      const [answered, resumed] = await Promise.all([
        ctx.answer(TRANSPORTS[round % 2], sessionId, answerSdp),
        new Promise((resolve) => setTimeout(resolve, round % 4)).then(() => ctx.api.webrtc.offer.mutate({ resumeToken, trickle: true })),
      ]);
      if (!answered.ok) expectFailure(answered, 'conflict', `round ${round}: the answer that lost to the resume`);
      assert.is(await stateOf(ctx, sessionId), 'waiting_for_answer', `round ${round}: the resumed session waits for its new answer`);
      const fresh = ctx.peer();
      expectOk(await ctx.answer('trpc', sessionId, await fresh.answer(resumed.offerSdp)), `round ${round}: the answer to the resume's offer`);
      expectOk(await ctx.close('rest', sessionId), `round ${round}: close`);
    }

    // After close: not_found, on both transports, and for the snake_case route.
    expectOk(await ctx.close('trpc', live.sessionId), 'close the live session');
    for (const via of TRANSPORTS) expectFailure(await ctx.answer(via, live.sessionId, liveAnswer), 'not_found', `${via}: an answer after close`);
    expectFailure(
      await restOutcome(fetch(`${ctx.server.url}/v1/webrtc/answer`, { method: 'POST', body: JSON.stringify({ session_id: live.sessionId, sdp: liveAnswer }) })),
      'not_found',
      'snake_case answer after close',
    );
    assert.is(ctx.size(), 1, 'only the raced session is left');
  }),
);

test('hostile ICE: unknown and closed sessions, malformed and oversize candidates, a flood capped per peer', () =>
  withServer(async (ctx) => {
    const healthy = await ctx.server.client();

    // Unknown and closed sessions are not_found, whatever the candidate, end-of-candidates markers included.
    const closed = await offered(ctx);
    expectOk(await ctx.close('trpc', closed.sessionId), 'close');
    for (const via of TRANSPORTS) {
      for (const id of ['D'.repeat(24), closed.sessionId]) {
        for (const candidate of [CANDIDATE(9), { candidate: CANDIDATE(9), sdpMid: '0' }, null, '', { candidate: '' }]) {
          expectFailure(await ctx.ice(via, id, candidate), 'not_found', `${via}: ICE ${JSON.stringify(candidate)} for ${id === closed.sessionId ? 'a closed' : 'an unknown'} session`);
        }
      }
    }

    // Malformed candidates, before and after the answer: refused by the schema, naming the candidate.
    const target = await offered(ctx);
    const malformed: unknown[] = [
      42,
      true,
      [],
      { candidate: 5 },
      { candidate: CANDIDATE(9), sdpMid: 5 },
      { candidate: CANDIDATE(9), sdpMLineIndex: '0' },
      { candidate: CANDIDATE(9), sdpMLineIndex: -1 },
      { candidate: CANDIDATE(9), sdpMLineIndex: 1.5 },
      { candidate: CANDIDATE(9), sdpMLineIndex: 5000 },
      { candidate: CANDIDATE(9), usernameFragment: 7 },
      { candidate: CANDIDATE(9), sdpMid: 'm'.repeat(65) },
      `candidate:${'x'.repeat(5000)}`,
      { candidate: `candidate:${'x'.repeat(100_000)}` },
      'hello',
      `a=${'y'.repeat(300)}`,
    ];
    for (const stage of ['before the answer', 'after the answer']) {
      for (const via of TRANSPORTS) {
        for (const candidate of malformed) {
          expectFailure(await ctx.ice(via, target.sessionId, candidate), 'invalid_request', `${via} ${stage}: ${JSON.stringify(candidate).slice(0, 60)}`, 'candidate');
        }
      }
      if (stage === 'before the answer') expectOk(await ctx.answer('trpc', target.sessionId, target.answerSdp), 'the answer');
    }
    // Well-formed but unusable for this peer: wrtc refuses them, and so do we, typed.
    for (const via of TRANSPORTS) {
      for (const candidate of ['candidate:garbage', { candidate: CANDIDATE(9), sdpMid: '7' }, { candidate: CANDIDATE(9), sdpMLineIndex: 3 }]) {
        expectFailure(await ctx.ice(via, target.sessionId, candidate), 'invalid_request', `${via}: ${JSON.stringify(candidate)}`, 'candidate');
      }
    }
    await trickle(ctx, target.sessionId, target.peer);
    assert.is((await health(new FrameInbox(await target.peer.channel()), 'after-bad-ice')).status, 'ok', 'the session survived the garbage');

    // 64 garbage candidates before the answer are held (then dropped quietly when it comes); the 65th is a conflict.
    const held = await offered(ctx);
    for (let i = 0; i < 64; i++) expectOk(await ctx.ice(TRANSPORTS[i % 2], held.sessionId, `candidate:garbage ${i}`), `held garbage ${i}`);
    expectFailure(await ctx.ice('rest', held.sessionId, CANDIDATE(9)), 'conflict', 'the 65th early candidate');
    expectOk(await ctx.answer('rest', held.sessionId, held.answerSdp), 'the answer after 64 garbage candidates');
    await trickle(ctx, held.sessionId, held.peer);
    assert.is((await health(new FrameInbox(await held.peer.channel()), 'after-held')).status, 'ok', 'the held garbage did not stop the session');

    // A flood of well-formed candidates on a connected session: each would cost ICE checks on the network thread all
    // sessions share (a thousand stalled every session for seconds), so a peer takes 64; the rest are conflicts.
    const flooded = await ctx.connected();
    const applied = ctx.server.app.sessions.get(flooded.sessionId).info().counts.iceCandidates;
    const flood = await Promise.all(Array.from({ length: 300 }, (_, i) => ctx.ice(TRANSPORTS[i % 2], flooded.sessionId, CANDIDATE(20_000 + i))));
    const accepted = flood.filter((o) => o.ok).length;
    for (const outcome of flood.filter((o) => !o.ok)) expectFailure(outcome, 'conflict', 'a candidate past the cap', 'candidate');
    assert.is(accepted, 64 - applied, `the peer took 64 candidates in all (${applied} trickled, ${accepted} from the flood)`);
    assert.is(ctx.server.app.sessions.get(flooded.sessionId).info().counts.iceCandidates, 64);
    assert.is((await health(flooded.inbox, 'after-flood')).status, 'ok', 'the flooded session still answers');
    assert.is((await healthy.request('health')).status, 'ok', 'and so does the healthy client');
  }),
);

/** A raw HTTP answer from the server, its body parsed as JSON (tRPC labels some of its JSON errors text/plain). */
async function raw(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, init);
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    assert.unreachable(`${init.method ?? 'GET'} ${url}: a JSON answer, got ${response.status}: ${text.slice(0, 200)}`);
    throw new Error('unreachable');
  }
}

/**
 * A tRPC error answer as tRPC's fetch adapter sends it, typed: an appCode from the table that is not `internal`,
 * and a 4xx status: the table's, or tRPC's own 415 for a content type it cannot read.
 */
function trpcFailure(answer: { status: number; body: unknown }, what: string): { appCode: string; status: number } {
  const items = Array.isArray(answer.body) ? answer.body : [answer.body];
  const errors = items.map((item) => (item as { error?: { json?: { data?: { appCode?: string; httpStatus?: number } } } }).error?.json?.data);
  assert.ok(errors.every(Boolean), `${what}: every answer is an error (${JSON.stringify(answer.body).slice(0, 300)})`);
  for (const data of errors) {
    const { appCode, httpStatus } = data!;
    assert.ok(isErrorCode(appCode) && appCode !== 'internal', `${what}: a typed appCode, got ${appCode}`);
    const table = ERROR_CODES[appCode as keyof typeof ERROR_CODES];
    assert.ok(httpStatus === table || httpStatus === 415, `${what}: status ${httpStatus} for ${appCode}`);
  }
  // 207: a batch whose calls failed differently.
  assert.ok((answer.status >= 400 && answer.status < 500) || answer.status === 207, `${what}: a client error status, got ${answer.status}`);
  return { appCode: errors[0]!.appCode!, status: errors[0]!.httpStatus! };
}

/** One HTTP/1.1 request on `agent` (a single kept-alive connection), answering its status and `connection` header. */
function onConnection(agent: http.Agent, url: string, method: string, body?: string): Promise<{ status: number; connection?: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const request = http.request(url, { method, agent, headers }, (response) => {
      answered = true;
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection }));
    });
    // The server answers an oversize body before reading it and closes: writing the rest may then fail. Only a
    // request that got no answer fails.
    request.on('error', (error) => (answered ? undefined : reject(error)));
    request.end(body);
  });
}

test('malformed bodies on the REST routes and on tRPC: typed 4xx errors, never a 500, and no prototype pollution', () =>
  withServer(async (ctx) => {
    const { url } = ctx.server;
    const { sessionId } = await offered(ctx);
    const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) => restOutcome(fetch(`${url}${path}`, { method: 'POST', body, headers }));
    const form = new FormData();
    form.set('answerSdp', 'v=0');

    // REST: bodies that are not JSON objects, fields of the wrong type, whatever the content type says.
    const deep = `{"answerSdp":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    // A code left out: any typed 4xx will do (how deep nesting is refused is the server's choice).
    const restCases: Array<[string, () => Promise<Outcome>, string?, string?]> = [
      ['random bytes', () => post(`/v1/webrtc/answer/${sessionId}`, randomBytes(256)), 'invalid_json'],
      ['a multipart form', () => post(`/v1/webrtc/answer/${sessionId}`, form), 'invalid_json'],
      ['the word undefined', () => post(`/v1/webrtc/answer/${sessionId}`, 'undefined', { 'content-type': 'application/json' }), 'invalid_json'],
      ['100,000 nested arrays as answerSdp', () => post(`/v1/webrtc/answer/${sessionId}`, deep)],
      ['answerSdp under __proto__', () => post(`/v1/webrtc/answer/${sessionId}`, '{"__proto__":{"answerSdp":"v=0"}}'), 'invalid_request', 'answerSdp'],
      ['a numeric session_id', () => post('/v1/webrtc/answer', JSON.stringify({ session_id: 5, sdp: 'v=0' })), 'invalid_request', 'sessionId'],
      ['an object sdp', () => post('/v1/webrtc/answer', JSON.stringify({ session_id: sessionId, sdp: { $ne: 1 } })), 'invalid_request', 'answerSdp'],
      ['a candidate list', () => post(`/v1/webrtc/ice/${sessionId}`, JSON.stringify({ candidate: { candidate: ['x'] } })), 'invalid_request', 'candidate'],
      ['a string trickle flag', () => post('/v1/webrtc/offer', JSON.stringify({ trickle: 'yes' })), 'invalid_request', 'trickle'],
      ['a numeric resume token', () => post('/v1/webrtc/offer', JSON.stringify({ resumeToken: 5 })), 'invalid_request', 'resumeToken'],
      ['a 300-character clientId', () => post('/v1/webrtc/offer', JSON.stringify({ clientId: 'c'.repeat(300) })), 'invalid_request', 'clientId'],
      ['a 2 MiB body', () => post(`/v1/webrtc/answer/${sessionId}`, JSON.stringify({ answerSdp: 'x'.repeat(2 << 20) })), 'payload_too_large'],
    ];
    for (const [what, call, code, field] of restCases) {
      const outcome = await call();
      if (code) expectFailure(outcome, code, `REST: ${what}`, field);
      else assert.ok(failure(outcome, `REST: ${what}`).status < 500);
    }
    // The content type is not what decides: JSON labelled as a form is still read as JSON.
    expectOk(await post(`/v1/webrtc/ice/${sessionId}`, '{"candidate":null}', { 'content-type': 'application/x-www-form-urlencoded' }), 'JSON labelled a form');

    // tRPC: what its fetch adapter refuses, and superjson metadata crafted to break deserialization.
    const json = { 'content-type': 'application/json' };
    const input = (value: unknown) => JSON.stringify({ json: value });
    const answerPath = `${url}/trpc/webrtc.answer`;
    const trpcCases: Array<[string, () => Promise<{ status: number; body: unknown }>, string?]> = [
      ['not JSON', () => raw(answerPath, { method: 'POST', body: 'not json', headers: json })],
      ['random bytes', () => raw(answerPath, { method: 'POST', body: randomBytes(256), headers: json })],
      ['text/plain', () => raw(answerPath, { method: 'POST', body: input({ sessionId, answerSdp: 'v=0' }), headers: { 'content-type': 'text/plain' } })],
      ['no content type', () => raw(answerPath, { method: 'POST', body: new TextEncoder().encode(input({ sessionId, answerSdp: 'v=0' })) })],
      ['octet-stream', () => raw(answerPath, { method: 'POST', body: randomBytes(64), headers: { 'content-type': 'application/octet-stream' } }), 'invalid_request'],
      ['a broken multipart body', () => raw(answerPath, { method: 'POST', body: 'garbage', headers: { 'content-type': 'multipart/form-data; boundary=x' } }), 'invalid_request'],
      ['a form where JSON is due', () => raw(answerPath, { method: 'POST', body: form }), 'invalid_request'],
      ['null', () => raw(answerPath, { method: 'POST', body: 'null', headers: json }), 'invalid_request'],
      ['json: null', () => raw(answerPath, { method: 'POST', body: input(null), headers: json }), 'invalid_request'],
      ['100,000 nested arrays', () => raw(answerPath, { method: 'POST', body: `{"json":${deep}}`, headers: json }), 'invalid_request'],
      // rpc.* bodies may be as large as a data-channel message; their nesting is bounded as they stream, before superjson recurses.
      ['100,000 nested arrays to rpc.echo', () => raw(`${url}/trpc/rpc.echo`, { method: 'POST', body: `{"json":{"data":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`, headers: json }), 'invalid_request'],
      ['a GET of a mutation', () => raw(`${answerPath}?input=${encodeURIComponent(input({ sessionId, answerSdp: 'v=0' }))}`), 'method_not_allowed'],
      ['a POST to a query', () => raw(`${url}/trpc/webrtc.session`, { method: 'POST', body: input({ sessionId }), headers: json }), 'method_not_allowed'],
      ['a query with broken input', () => raw(`${url}/trpc/webrtc.session?input=%7Bnot`), 'invalid_request'],
      ['an unknown procedure', () => raw(`${url}/trpc/webrtc.nope`, { method: 'POST', body: input({}), headers: json }), 'not_found'],
      ['a 2 MiB body', () => raw(answerPath, { method: 'POST', body: input({ sessionId, answerSdp: 'x'.repeat(2 << 20) }), headers: json }), 'payload_too_large'],
      ['a batch of garbage', () => raw(`${url}/trpc/webrtc.answer,webrtc.ice,webrtc.close?batch=1`, { method: 'POST', body: '{"0":{"json":5},"1":"x","2":{"json":{"sessionId":[]}}}', headers: json })],
      ['a batch with broken input', () => raw(`${url}/trpc/webrtc.session,webrtc.session?batch=1&input=%5B1`)],
    ];
    const meta = [
      { values: { sessionId: ['custom', 'nope'] } },
      { values: 'garbage' },
      { values: { answerSdp: ['bigint'] } },
      { values: { 'answerSdp.__proto__.polluted': ['set'] } },
      { referentialEqualities: { sessionId: ['__proto__.polluted'] } },
      { referentialEqualities: { 'constructor.prototype.polluted': ['sessionId'] } },
    ];
    for (const m of meta) {
      const body = JSON.stringify({ json: { sessionId, answerSdp: 'v=0' }, meta: m });
      trpcCases.push([`superjson meta ${JSON.stringify(m)}`, () => raw(answerPath, { method: 'POST', body, headers: json })]);
    }
    trpcCases.push(['__proto__ in the input', () => raw(answerPath, { method: 'POST', body: `{"json":{"__proto__":{"polluted":1},"sessionId":"${sessionId}","answerSdp":"v=0"}}`, headers: json })]);
    for (const [what, call, appCode] of trpcCases) {
      const failed = trpcFailure(await call(), `tRPC: ${what}`);
      if (appCode) assert.is(failed.appCode, appCode, `tRPC: ${what}: appCode`);
    }
    assert.is(({} as { polluted?: unknown }).polluted, undefined, 'Object.prototype is untouched');
    assert.is(await stateOf(ctx, sessionId), 'waiting_for_answer', 'the session the garbage named is unharmed');
  }),
);

test('tRPC input that is not superjson\'s envelope is 400 invalid_request, never read as "no input"', () =>
  withServer(async (ctx) => {
    const { url } = ctx.server;
    const json = { 'content-type': 'application/json' };
    const notEnvelopes = ['"x"', '1', 'true', '[]', '[{"json":{}}]', '{"foo":1}', '{"json":{},"extra":1}', '{"meta":5}', '{"json":{},"meta":[]}'];
    for (const body of notEnvelopes) {
      for (const path of ['webrtc.offer', 'rpc.save_message']) {
        const failed = trpcFailure(await raw(`${url}/trpc/${path}`, { method: 'POST', body, headers: json }), `${path} ${body}`);
        assert.equal([failed.appCode, failed.status], ['invalid_request', 400], `${path} ${body}`);
      }
      const query = trpcFailure(await raw(`${url}/trpc/rpc.chat_history?input=${encodeURIComponent(body)}`), `a query with ${body}`);
      assert.is(query.appCode, 'invalid_request');
    }
    const batch = await raw(`${url}/trpc/webrtc.offer,webrtc.offer?batch=1`, { method: 'POST', body: '{"0":"x","1":{"a":1}}', headers: json });
    assert.equal(trpcFailure(batch, 'a batch of non-envelopes').appCode, 'invalid_request');
    assert.is(ctx.size(), 0, 'no offer made a session');
    // What tRPC clients send for no input, `{}`, still means no input.
    const none = await raw(`${url}/trpc/webrtc.offer`, { method: 'POST', body: '{}', headers: json });
    assert.is(none.status, 200);
    assert.is(ctx.size(), 1);
  }),
);

test('a refused oversize body closes its connection, so the next request on it is served, not reset', () =>
  withServer(async ({ server }) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = 'x'.repeat(2 << 20);
      const cases: Array<[string, string, string]> = [
        ['REST', `${server.url}/v1/webrtc/answer/nope`, JSON.stringify({ answerSdp: big })],
        ['tRPC', `${server.url}/trpc/webrtc.answer`, JSON.stringify({ json: { sessionId: 'nope', answerSdp: big } })],
      ];
      for (const [what, url, body] of cases) {
        assert.is((await onConnection(agent, `${server.url}/v1/webrtc/session/nope`, 'GET')).status, 404, `${what}: a request before`);
        const refused = await onConnection(agent, url, 'POST', body);
        assert.is(refused.status, 413, `${what}: refused`);
        assert.is(refused.connection, 'close', `${what}: the connection is not kept`);
        for (let i = 0; i < 3; i++) {
          assert.is((await onConnection(agent, `${server.url}/v1/webrtc/session/nope`, 'GET')).status, 404, `${what}: request ${i} after the refusal`);
        }
      }
    } finally {
      agent.destroy();
    }
  }),
);

/**
 * fetch over node:http through `agent`, so that thousands of calls at once share its few connections. Thousands of
 * connections at once overflow the listen backlog, and a CPU-starved kernel then resets some of them: that says
 * something about the machine, not about the server.
 */
function pooledFetch(agent: http.Agent): typeof fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const body = init.body == null ? undefined : Buffer.from(await new Response(init.body).arrayBuffer());
    const headers = Object.fromEntries(new Headers(init.headers));
    return new Promise<Response>((resolve, reject) => {
      const request = http.request(String(input), { method: init.method ?? 'GET', agent, headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const received = Object.entries(response.headers).flatMap(([name, value]) => [value ?? []].flat().map((one) => [name, one] as [string, string]));
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers: received }));
        });
      });
      request.on('error', reject);
      request.end(body);
    });
  }) as typeof fetch;
}

test('2,000 concurrent calls on unknown ids and a burst of offers past maxSessions: each answered and typed, the healthy session serving throughout, nothing left after', () =>
  withServer(
    async (ctx) => {
      const healthy: TabAgent = await ctx.server.client();
      const base = ctx.size();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
      try {
        const burst = callsTo(ctx.server.url, pooledFetch(agent));
        let bursting = true;
        const pings = (async () => {
          let served = 0;
          while (bursting) {
            assert.is((await healthy.request('health')).status, 'ok', 'the healthy session answers during the burst');
            served++;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          return served;
        })();

        const id = () => randomBytes(18).toString('base64url');
        const sdp = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
        const calls = Array.from({ length: 2000 }, (_, i) => {
          const via = TRANSPORTS[i % 2];
          const kind = Math.floor(i / 2) % 4;
          if (kind === 0) return burst.info(via, id());
          if (kind === 1) return burst.ice(via, id(), CANDIDATE(i));
          if (kind === 2) return burst.answer(via, id(), sdp);
          return burst.close(via, id());
        });
        const offers = Array.from({ length: 40 }, (_, i) => burst.offer(TRANSPORTS[i % 2]));
        const started = Date.now();
        const [answers, offered] = await Promise.all([Promise.all(calls), Promise.all(offers)]);
        const elapsed = Date.now() - started;
        bursting = false;
        const served = await pings;

        for (const [i, outcome] of answers.entries()) expectFailure(outcome, 'not_found', `call ${i} on an unknown id`);
        const created = offered.flatMap((o) => (o.ok ? [String(o.value.sessionId)] : []));
        for (const outcome of offered.filter((o) => !o.ok)) expectFailure(outcome, 'server_busy', 'an offer past maxSessions');
        assert.is(created.length, MAX_SESSIONS - base, 'the offers fill the free slots and no more');
        assert.is(ctx.size(), MAX_SESSIONS);
        assert.ok(served > 0, `the healthy session answered during the ${elapsed} ms burst`);

        // Half are closed by their client; the rest expire unanswered (the sweep, run as it would run once their offers
        // are past due). Either way the server lets go of their peers, and the healthy session stays.
        const peers = created.map((sessionId) => serverPeer(ctx, sessionId));
        for (const [i, sessionId] of created.entries()) if (i % 2) expectOk(await ctx.close(TRANSPORTS[(i >> 1) % 2], sessionId), 'close');
        assert.is(ctx.size(), base + Math.ceil(created.length / 2));
        ctx.server.app.sessions.sweep(Date.now() + OFFER_TTL_MS + 1);
        assert.is(ctx.size(), base, 'the unanswered offers expired');
        assert.ok(peers.every((pc) => pc.connectionState === 'closed'), 'every peer of the burst is closed');
        assert.is(ctx.server.app.dispatcher.inFlightCount, 0, 'nothing in flight');
        assert.is((await healthy.request('health')).status, 'ok', 'the healthy session still answers');
        expectOk(await ctx.offer('trpc'), 'a slot is free again');
      } finally {
        agent.destroy();
      }
    },
    { maxSessions: MAX_SESSIONS, offerTtlMs: OFFER_TTL_MS },
  ),
);

test.run();
