/**
 * Abuse of the message layer against a real server on loopback: seeded random and mutated requests, deep nesting,
 * 10 MB fields, invalid UTF-8, binary garbage of every frame kind, fragment floods and forged fragment headers on
 * real wrtc data channels; the same kinds of abuse, briefly, on `/v1/ws` and the native messaging host. Every
 * message must get exactly the answer the protocol gives it (a typed error frame, or the request's answer), the
 * server must stay up, and a healthy session alongside keeps getting correct answers.
 *
 * Seeded: a failure names its seed; `FUZZ_SEED=<seed> node --import tsx test/abuse-frames.test.ts` replays it.
 * test/bad-input.test.ts has the one-of-each bad frames; this file covers volume, randomness and the edges.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TabAgent } from '../src/client/index.ts';
import { isErrorCode } from '../src/errors.ts';
import { decodeRouteEnvelope, isRouteEnvelope } from '../src/transports/native/envelope.ts';
import { spawnNativeHost, type NativeHostClient } from '../src/transports/native/client.ts';
import { encodeLength, encodeNativeMessage, NativeMessageReader, type NativeInput } from '../src/transports/native/framing.ts';
import { decodeFrame, decodeRequestObject, MAX_NESTING_DEPTH, type DecodeResult, type InboundFrame } from '../src/protocol/frames.ts';
import {
  FRAME_ENVELOPE,
  FRAME_FRAGMENT,
  INNER_BINARY,
  INNER_TEXT,
  decodeEnvelope,
  decodeUtf8,
  encodeFragment,
  fragment,
} from '../src/protocol/framing.ts';
import { Reassembler } from '../src/protocol/reassembler.ts';
import { ChannelLink, type DataChannelLike } from '../src/protocol/link.ts';
import { registry, type Action } from '../src/protocol/registry.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { WEBSOCKET_PATH } from '../src/transports/websocket/endpoint.ts';
import { Rng, fuzzSeed, mutateRequest, mutateText, randomJson } from './fixtures/fuzz.ts';
import { opened, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const SEED = fuzzSeed();
const MiB = 1024 * 1024;
/** The server's default cap on a message (it runs with its defaults here). */
const MAX_MESSAGE_BYTES = 64 * MiB;
/** wrtc's and Chrome's max message size: the largest frame a data channel takes whole. */
const MAX_FRAME = 256 * 1024;
const encoder = new TextEncoder();

type Frame = Record<string, unknown>;

/** Requests that are valid and need no upstream or store: the starting points of mutation. */
const VALID: Frame[] = [
  { action: 'health', request_id: 'v-health' },
  { action: 'echo', request_id: 'v-echo', data: { n: 1, list: [1, 'two', null, { deep: [true] }] } },
  { request_type: 'GetParams', request_id: 7 },
  { action: 'set_params', request_id: 'v-set', params: { temperature: 0.5, top_k: 40, stop: ['\n'] }, replace: false },
  { action: 'chat', request_id: 'v-chat', model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, temperature: 1 },
  { action: 'embeddings', request_id: 'v-emb', input: ['a', 'b'] },
  { action: 'rerank', request_id: 'v-rr', query: 'q', documents: ['a'], top_n: 1 },
  { action: 'stop_generation', request_id: 'v-stop', target_request_id: 'ghost' },
  { action: 'halt_status' },
  { type: 'resume', pending: [{ request_id: 'r1', received: 0 }] },
];

/** One fuzz frame: any JSON value, a mutated valid request, or its text mutated past JSON. */
function fuzzText(rng: Rng): string {
  const roll = rng.int(10);
  if (roll < 2) return JSON.stringify(randomJson(rng, 4)) ?? 'null';
  const text = JSON.stringify(mutateRequest(rng, rng.pick(VALID)));
  return roll < 4 ? mutateText(rng, text) : text;
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle: what the protocol says each message gets.

/** The id an answer must carry: none, one the server assigned (`srv-<n>`), or the client's. */
const ASSIGNED = Symbol('assigned');
type ExpectedId = string | typeof ASSIGNED | undefined;

type Expected =
  /** A fragment that waits for the rest of its message: nothing comes back. */
  | { kind: 'silent' }
  | { kind: 'error'; code: string; id: ExpectedId; field?: string }
  /** A valid request: its answer, or a typed error other than `internal`. */
  | { kind: 'request'; action: Action; id: ExpectedId }
  /** A resume on the server's channel: replays of known ids, then `resumed`. */
  | { kind: 'resumed'; ids: Set<string> };

const ASSIGNED_MARK = '\u0000assigned';
const idOf = (id: string | undefined): ExpectedId => (id === ASSIGNED_MARK ? ASSIGNED : id);

function fromDecoded(decoded: InboundFrame | DecodeResult, resumable: boolean): Expected {
  if (!decoded.ok) {
    const field = (decoded.error.details as { field?: string } | undefined)?.field;
    return { kind: 'error', code: decoded.error.code, id: idOf(decoded.requestId), field };
  }
  if ('resume' in decoded) {
    if (!resumable) return { kind: 'error', code: 'invalid_request', id: undefined, field: 'type' };
    return { kind: 'resumed', ids: new Set(decoded.resume.pending.map((p) => p.request_id)) };
  }
  return { kind: 'request', action: decoded.request.action, id: idOf(decoded.request.requestId) };
}

/**
 * A text frame as the server reads it: wrtc and ws send a lone surrogate as U+FFFD, as TextEncoder does, and a
 * leading BOM stays (and is not JSON).
 */
function expectText(text: string, resumable: boolean): Expected {
  const received = new TextDecoder('utf-8', { ignoreBOM: true }).decode(encoder.encode(text));
  return fromDecoded(decodeFrame(received, () => ASSIGNED_MARK), resumable);
}

/**
 * A binary frame on a data channel. `mirror` is a reassembler fed the same fragments as the server's, so
 * fragment state (partial messages, rejected ids) is predicted rather than guessed.
 */
function expectBinary(bytes: Uint8Array, mirror: Reassembler, resumable: boolean): Expected {
  const envelope = (frame: Uint8Array): Expected => {
    try {
      return expectText(decodeEnvelope(frame).header, resumable);
    } catch (error) {
      return { kind: 'error', code: (error as { code: string }).code, id: undefined };
    }
  };
  if (bytes[0] === FRAME_ENVELOPE) {
    if (bytes.length > MAX_MESSAGE_BYTES) return { kind: 'error', code: 'payload_too_large', id: undefined };
    return envelope(bytes);
  }
  if (bytes[0] !== FRAME_FRAGMENT) return { kind: 'error', code: 'invalid_request', id: undefined };
  let done;
  try {
    done = mirror.push(bytes.slice());
  } catch (error) {
    return { kind: 'error', code: (error as { code: string }).code, id: undefined };
  }
  if (!done) return { kind: 'silent' };
  return done.kind === 'text' ? expectText(done.text, resumable) : envelope(done.bytes);
}

/** Checks the frames one message got back (chunks and events aside) against what it should get. */
function checkAnswer(frames: Frame[], expected: Expected, what: string): void {
  const finals = frames.filter((f) => f.type !== 'chunk' && f.type !== 'event');
  const shown = () => JSON.stringify(finals, (_key, value) => (typeof value === 'string' && value.length > 100 ? `${value.slice(0, 100)}…` : value)).slice(0, 400);
  if (expected.kind === 'silent') {
    assert.is(finals.length, 0, `${what}: no answer to a fragment that waits for more (got ${shown()})`);
    return;
  }
  if (expected.kind === 'resumed') {
    const last = finals[finals.length - 1];
    assert.is(last?.type, 'resumed', `${what}: a resume ends with "resumed" (got ${shown()})`);
    for (const replay of finals.slice(0, -1)) {
      assert.ok(expected.ids.has(replay.request_id as string), `${what}: a replay of an id the resume named (got ${shown()})`);
    }
    return;
  }
  assert.is(finals.length, 1, `${what}: exactly one answer (got ${shown()})`);
  const [frame] = finals;
  if (expected.id === ASSIGNED) assert.match(String(frame.request_id), /^srv-\d+$/, `${what}: a server-assigned request_id (got ${shown()})`);
  else if (expected.id === undefined) assert.not.ok('request_id' in frame, `${what}: no request_id (got ${shown()})`);
  else assert.is(frame.request_id, expected.id, `${what}: request_id echoed (got ${shown()})`);
  if (frame.type === 'error') {
    assert.ok(isErrorCode(frame.code), `${what}: a code from src/errors.ts (got ${shown()})`);
    assert.type(frame.message, 'string', `${what}: a message`);
    assert.ok((frame.message as string).length > 0 && (frame.message as string).length < 2_000, `${what}: a short message (got ${shown()})`);
  }
  if (expected.kind === 'error') {
    assert.is(frame.type, 'error', `${what}: an error frame (got ${shown()})`);
    assert.is(frame.code, expected.code, `${what}: code (got ${shown()})`);
    if (expected.field !== undefined) assert.is((frame.details as { field?: string }).field, expected.field, `${what}: details.field (got ${shown()})`);
    return;
  }
  if (frame.type === 'error') assert.is.not(frame.code, 'internal', `${what}: a valid request may fail, but not as a server bug (got ${shown()})`);
  else assert.is(frame.type, registry[expected.action].response, `${what}: the answer's type (got ${shown()})`);
}

const reproduce = (i: number, data: string | Uint8Array) =>
  `FUZZ_SEED=${SEED}, message ${i}: ${typeof data === 'string' ? JSON.stringify(data.slice(0, 200)) : `${data.length} bytes [${[...data.subarray(0, 24)].join(',')}]`}`;

// ---------------------------------------------------------------------------------------------------------------
// Data channels, driven by hand.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls every millisecond or so: answers on loopback come in well under `until`'s 10 ms step. */
async function soon(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

/**
 * This side of one data channel: raw sends for abuse, and the project's own ChannelLink to read the server's
 * frames (it reassembles fragmented answers) and to send messages too big for one frame.
 */
class Wire {
  readonly frames: Frame[] = [];
  /** Frames from the server this side could not read: the server must never send one. */
  readonly unreadable: string[] = [];
  readonly link: ChannelLink;
  /** Answers to the pings that wait for the server to serve a new channel. */
  ready = 0;
  /** Frames already attributed to a message sent: the next message's answers start here. */
  #accounted = 0;
  #quiet = 0;

  constructor(readonly channel: RTCDataChannel) {
    this.link = new ChannelLink(channel as unknown as DataChannelLike, {
      maxMessageSize: MAX_FRAME,
      onMessage: (message) => {
        let frame: Frame;
        try {
          frame = message.kind === 'text' ? JSON.parse(message.text) : { ...JSON.parse(message.header), attachment: message.payload };
        } catch (error) {
          return void this.unreadable.push(String(error));
        }
        // Answers to open()'s pings may come late, after the one it waited for: they answer no abuse.
        if (typeof frame.request_id === 'string' && frame.request_id.startsWith('ready-')) this.ready++;
        else this.frames.push(frame);
      },
      onProtocolError: (error) => this.unreadable.push(error.message),
    });
  }

  /** Sends as it is; a text too big for one frame goes in fragments, as a well-behaved peer sends it. */
  async send(data: string | Uint8Array<ArrayBuffer>): Promise<void> {
    if (typeof data !== 'string') this.channel.send(data);
    else if (data.length * 3 <= MAX_FRAME) this.channel.send(data);
    else await this.link.sendText(data);
  }

  /** Waits until the frames after the last accounted one satisfy `done`; returns them and accounts for them. */
  async collect(done: (frames: Frame[]) => boolean, what: string, timeoutMs = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.frames.slice(this.#accounted))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames.slice(this.#accounted)).slice(0, 400)}`);
      await sleep(1);
    }
    const got = this.frames.slice(this.#accounted);
    this.#accounted = this.frames.length;
    return got;
  }

  /**
   * Sends one message and checks what comes back. A message that should get nothing is followed by a `health`
   * sentinel, whose answer must then be the only frame.
   */
  async exchange(data: string | Uint8Array<ArrayBuffer>, expected: Expected, what: string): Promise<void> {
    await this.send(data);
    const finals = (frames: Frame[]) => frames.filter((f) => f.type !== 'chunk' && f.type !== 'event');
    if (expected.kind === 'silent') {
      const id = `quiet-${++this.#quiet}`;
      await this.send(JSON.stringify({ action: 'health', request_id: id }));
      const frames = await this.collect((f) => f.some((frame) => frame.request_id === id), `${what}: the sentinel`);
      const sentinel = frames.findIndex((frame) => frame.request_id === id);
      checkAnswer(frames.filter((_, i) => i !== sentinel), expected, what);
      return;
    }
    const done = expected.kind === 'resumed' ? (f: Frame[]) => f.some((frame) => frame.type === 'resumed') : (f: Frame[]) => finals(f).length > 0;
    checkAnswer(await this.collect(done, what), expected, what);
  }

  /** Nothing more arrives: no message got a second answer. */
  async settled(what: string): Promise<void> {
    await sleep(100);
    const extra = this.frames.slice(this.#accounted);
    assert.equal(extra, [], `${what}: no frames beyond one answer per message`);
    assert.equal(this.unreadable, [], `${what}: every frame from the server was readable`);
  }

  /** A request whose answer is awaited by id (sent with the link, so it may be any size). */
  async request(frame: Frame): Promise<Frame> {
    const id = String(frame.request_id);
    await this.send(JSON.stringify(frame));
    const frames = await this.collect((f) => f.some((got) => got.request_id === id && got.type !== 'chunk' && got.type !== 'event'), `an answer to ${id}`, 30_000);
    return frames.find((got) => got.request_id === id && got.type !== 'chunk' && got.type !== 'event')!;
  }
}

interface RawSession {
  sessionId: string;
  peer: RawPeer;
  /** The server's own `tabagent` channel: requests there are kept for a resume (the outbox path). */
  primary: Wire;
  /** A channel this side opens: requests there go straight back. */
  open(label: string): Promise<Wire>;
}

let shared: { server: TestServer; raw: RawSession; healthy: TabAgent; peers: RawPeer[] } | undefined;

/** One server with its defaults for the data-channel tests, started by the first test that needs it. */
async function world() {
  if (shared) return shared;
  const server = await startServer({ maxSessionsPerIp: 50 });
  const peers: RawPeer[] = [];
  const raw = await rawSession(server, peers);
  const healthy = await server.client();
  shared = { server, raw, healthy, peers };
  return shared;
}

async function post(url: string, body: unknown): Promise<Frame> {
  const response = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const json = (await response.json()) as Frame;
  assert.is(response.status, 200, `POST ${url}: ${JSON.stringify(json)}`);
  return json;
}

/** A session driven by hand over REST signaling, so its `tabagent` channel is ours to abuse. */
async function rawSession(server: TestServer, peers: RawPeer[]): Promise<RawSession> {
  const peer = rawPeer();
  peers.push(peer);
  const offer = (await post(`${server.url}/v1/webrtc/offer`, {})) as { sessionId: string; offerSdp: string };
  await post(`${server.url}/v1/webrtc/answer/${offer.sessionId}`, { answerSdp: await peer.answer(offer.offerSdp) });
  await peer.gathered;
  for (const candidate of peer.candidates) await post(`${server.url}/v1/webrtc/ice/${offer.sessionId}`, { candidate: candidate.toJSON() });
  const primary = new Wire(await peer.channel('tabagent'));
  return {
    sessionId: offer.sessionId,
    peer,
    primary,
    async open(label) {
      const wire = new Wire(await opened(peer.pc.createDataChannel(label)));
      // The server serves a channel once its side appears: ping until it answers.
      const deadline = Date.now() + 10_000;
      for (let attempt = 0; wire.ready === 0; attempt++) {
        if (Date.now() > deadline) throw new Error(`channel "${label}" was not served`);
        await wire.send(JSON.stringify({ action: 'health', request_id: `ready-${attempt}` }));
        await until(() => wire.ready > 0, 'a ping answered', 250).catch(() => {});
      }
      return wire;
    },
  };
}

/** The server's side of a raw session's channel. */
function serverLink(server: TestServer, sessionId: string, label: string): ChannelLink {
  const link = [...server.app.sessions.get(sessionId).channels].find((l) => l.channel.label === label);
  assert.ok(link, `the server serves channel "${label}"`);
  return link;
}

/**
 * A second, well-behaved session sending echo requests the whole time the abuse runs; stop() says how many it
 * got right and throws on the first wrong or missing answer.
 */
function alongside(client: TabAgent) {
  let running = true;
  let answered = 0;
  let failure: unknown;
  const loop = (async () => {
    while (running) {
      const data = { n: answered, text: 'ünï😀', list: [answered, null] };
      const answer = await client.request('echo', { data });
      assert.equal(answer.data, data, 'the healthy session gets its own data back');
      answered++;
      await sleep(5);
    }
  })().catch((error: unknown) => (failure = error)); // kept for stop(): a rejection nobody awaits yet ends the process
  return {
    async stop(): Promise<number> {
      running = false;
      await loop;
      if (failure) throw failure;
      assert.ok(answered > 0, 'the healthy session was served while the abuse ran');
      return answered;
    },
  };
}

const test = suite('abuse: frames');

test.after(async () => {
  if (!shared) return;
  await shared.server.close(); // before the peers: see test/fixtures/server.ts
  for (const peer of shared.peers) peer.close();
});

test('data channel: a few hundred random and mutated requests on the server\'s channel: each gets exactly its answer', async () => {
  const { raw, healthy } = await world();
  const rng = new Rng(SEED);
  const healthyRun = alongside(healthy);
  for (let i = 0; i < 300; i++) {
    const text = fuzzText(rng);
    await raw.primary.exchange(text, expectText(text, true), reproduce(i, text));
  }
  await raw.primary.settled(`FUZZ_SEED=${SEED}`);
  await healthyRun.stop();
});

test('data channel: lone surrogates, NULs, a BOM, 1e999 and other text edges get typed answers', async () => {
  const { raw } = await world();
  const edges = [
    '{"action":"echo","request_id":"s1","data":"\ud800"}',
    '{"action":"echo","request_id":"\udfff"}',
    '{"action":"echo","request_id":"n1","data":"a\u0000b"}',
    '\ufeff{"action":"health","request_id":"bom"}',
    '{"action":"health","request_id":"dup","request_id":"dup2"}',
    '{"action":"set_params","request_id":"inf","params":{"temperature":1e999}}',
    '{"action":"echo","request_id":"big-int","data":123456789012345678901234567890}',
    '{"action":"echo","request_id":9007199254740993}',
    '{"action":"echo","request_id":-0}',
    '',
    ' ',
    '\u0000',
  ];
  for (const [i, text] of edges.entries()) await raw.primary.exchange(text, expectText(text, true), `edge ${i}: ${JSON.stringify(text)}`);
  await raw.primary.settled('text edges');
});

test(`data channel: deep nesting: JSON.parse takes 100,000 levels, JSON.stringify cannot; past ${MAX_NESTING_DEPTH} levels a request is invalid_request`, async () => {
  const { server, raw, healthy } = await world();
  const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const objects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  // Why the cap exists: V8 parses any depth iteratively but serializes recursively.
  const parsed = JSON.parse(arrays(100_000));
  assert.throws(() => JSON.stringify(parsed), (error: Error) => error instanceof RangeError, 'JSON.stringify of 100,000 levels is a RangeError');

  const side = await raw.open('deep');
  const healthyRun = alongside(healthy);
  const cases: [string, string, string][] = [
    ['an echo of 100,000 nested arrays', `{"action":"echo","request_id":"deep-a","data":${arrays(100_000)}}`, 'data'],
    ['an echo of 40,000 nested objects', `{"action":"echo","request_id":"deep-o","data":${objects(40_000)}}`, 'data'],
    ['deep nesting in an unknown field', `{"action":"health","request_id":"deep-u","x":${arrays(100_000)}}`, 'x'],
    ['deep nesting where an object belongs', `{"action":"chat","request_id":"deep-c","messages":${arrays(100_000)}}`, 'messages.0'],
    ['a deep resume', `{"type":"resume","pending":${arrays(100_000)}}`, 'pending.0'],
    ['a deep frame that is not an object', arrays(100_000), ''],
    ['one level past the cap', `{"action":"echo","request_id":"deep-129","data":${arrays(MAX_NESTING_DEPTH + 1)}}`, 'data'],
  ];
  for (const wire of [raw.primary, side]) {
    for (const [what, text, field] of cases) {
      assert.ok(text.length < MAX_FRAME, `${what} fits in one frame`);
      const expected = expectText(text, wire === raw.primary);
      assert.is(expected.kind, 'error', `${what}: refused`);
      if (expected.kind === 'error' && field) assert.is(expected.field, field, `${what}: names the field`);
      await wire.exchange(text, expected, `${what} on "${wire.channel.label}"`);
    }
    // Exactly at the cap is fine, and comes back whole.
    const atCap = await wire.request({ action: 'echo', request_id: `cap-${wire.channel.label}`, data: JSON.parse(arrays(MAX_NESTING_DEPTH)) });
    assert.is(atCap.type, 'echo');
    assert.is(JSON.stringify(atCap.data), arrays(MAX_NESTING_DEPTH));
    // 600 KB of nesting arrives in fragments: the same answer.
    const fragmented = `{"action":"echo","request_id":"deep-frag","data":${objects(100_000)}}`;
    await wire.exchange(fragmented, { kind: 'error', code: 'invalid_request', id: 'deep-frag', field: 'data' }, 'a fragmented deep echo');
    await wire.settled(`deep nesting on "${wire.channel.label}"`);
  }
  await healthyRun.stop();
  assert.is(server.app.dispatcher.inFlightCount, 0);
});

test('data channel: 10 MB string fields with the default 64 MiB cap: typed errors or whole answers, errors never echo them', async () => {
  const { raw, healthy } = await world();
  const big = 'é'.repeat(5 * MiB); // 10 MiB of UTF-8
  const mega = big.slice(0, MiB / 2); // 1 MiB, where the size matters less than that it is not echoed back
  const wire = raw.primary;
  const healthyRun = alongside(healthy);

  const refused: [string, Frame, string, string][] = [
    ['a chat with 10 MB content for a model the server lacks', { action: 'chat', request_id: 'big-chat', model: 'm', messages: [{ role: 'user', content: big }] }, 'not_found', 'big-chat'],
    ['embeddings of a 10 MB input from a model the server lacks', { action: 'embeddings', request_id: 'big-emb', model: 'm', input: big }, 'not_found', 'big-emb'],
    ['a 10 MB field name', { action: 'health', request_id: 'big-key', [big]: 1 }, 'invalid_request', 'big-key'],
    ['a 1 MB field name where a message belongs', { action: 'chat', request_id: 'big-key2', messages: [{ role: 'user', content: 'hi', [mega]: 1 }] }, 'invalid_request', 'big-key2'],
    ['a 1 MB action name', { request_id: 'big-action', action: mega }, 'unknown_action', 'big-action'],
    ['a 1 MB unknown field', { action: 'health', request_id: 'big-field', x: mega }, 'invalid_request', 'big-field'],
    ['a 1 MB request_id', { action: 'health', request_id: mega }, 'invalid_request', ''],
    ['a 1 MB model name', { action: 'embeddings', request_id: 'big-model', model: mega, input: 'x' }, 'invalid_request', 'big-model'],
  ];
  for (const [what, frame, code, id] of refused) {
    const text = JSON.stringify(frame);
    await wire.exchange(text, expectText(text, true), what);
    const answer = wire.frames.at(-1)!;
    assert.is(answer.code, code, `${what}: code`);
    assert.is(answer.request_id, id || undefined, `${what}: request_id`);
    const size = JSON.stringify(answer).length;
    assert.ok(size < 4_000, `${what}: the error does not echo the input (${size} chars)`);
  }

  const echo = await wire.request({ action: 'echo', request_id: 'big-echo', data: big });
  assert.is(echo.type, 'echo');
  assert.ok(echo.data === big, 'the 10 MB echo comes back whole');
  await healthyRun.stop();
  await wire.settled('10 MB fields');
});

test('data channel: binary garbage of random lengths, and every frame-kind byte, get typed errors on a data channel', async () => {
  const { server, raw, healthy } = await world();
  const rng = new Rng(SEED ^ 0x5eed);
  const wire = await raw.open('binary');
  const mirror = new Reassembler({ maxMessageBytes: MAX_MESSAGE_BYTES });
  const healthyRun = alongside(healthy);
  let i = 0;
  const send = (bytes: Uint8Array<ArrayBuffer>) => wire.exchange(bytes, expectBinary(bytes, mirror, false), reproduce(i++, bytes));

  for (let kind = 0; kind < 256; kind++) {
    const frame = rng.bytes(1 + rng.int(48));
    frame[0] = kind;
    await send(frame);
  }
  for (let n = 0; n < 60; n++) {
    const length = rng.chance(0.8) ? 1 + rng.int(64) : 1 + rng.int(MAX_FRAME - 1);
    await send(rng.bytes(length));
  }
  // Invalid UTF-8 where text is expected: envelope headers, and text reassembled from fragments.
  const invalid = [
    [0xff],
    [0xc3, 0x28],
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xf8, 0x88, 0x80, 0x80, 0x80], // a 5-byte form
    [0x7b, 0x22, 0xe6, 0x97], // cut inside a character
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  ].map((bytes) => new Uint8Array(bytes));
  for (const bytes of invalid) {
    const header = new Uint8Array([...encoder.encode('{"action":"echo","data":"'), ...bytes, ...encoder.encode('"}')]);
    const envelope = new Uint8Array(5 + header.length);
    envelope[0] = FRAME_ENVELOPE;
    new DataView(envelope.buffer).setUint32(1, header.length);
    envelope.set(header, 5);
    await send(envelope);
    const text = header.length % 2 ? new Uint8Array([...header, 0x20]) : header;
    const half = text.length / 2;
    const id = 0x1000 + i;
    await send(encodeFragment(id, 0, 2, INNER_TEXT, text.subarray(0, half)));
    await send(encodeFragment(id, 1, 2, INNER_TEXT, text.subarray(half)));
  }
  // An empty binary message.
  await send(new Uint8Array(0));
  await wire.settled(`FUZZ_SEED=${SEED}`);
  const link = serverLink(server, raw.sessionId, 'binary');
  assert.is(link.partial.messages, mirror.pending, 'the server holds the partial messages the model predicts');
  await healthyRun.stop();
});

test('data channel: fragment floods and forged fragment headers: partial messages stay bounded, each bad header one error', async () => {
  const { server, raw, healthy } = await world();
  const wire = await raw.open('flood');
  const link = serverLink(server, raw.sessionId, 'flood');
  const mirror = new Reassembler({ maxMessageBytes: MAX_MESSAGE_BYTES });
  const healthyRun = alongside(healthy);
  let n = 0;
  const send = (bytes: Uint8Array<ArrayBuffer>, what: string, code?: string) => {
    const expected = expectBinary(bytes, mirror, false);
    if (code) assert.is(expected.kind === 'error' && expected.code, code, `${what}: the expected answer`);
    return wire.exchange(bytes, expected, `${what} (#${n++})`);
  };
  /** Health requests cut in two equal halves: a flood whose messages can still complete. */
  const halves = (id: string): [Uint8Array, Uint8Array] => {
    let text = JSON.stringify({ action: 'health', request_id: id });
    if (text.length % 2) text += ' ';
    const bytes = encoder.encode(text);
    return [bytes.subarray(0, bytes.length / 2), bytes.subarray(bytes.length / 2)];
  };

  // 16 partial messages fill the reassembler.
  for (let id = 1; id <= 16; id++) await send(encodeFragment(id, 0, 2, INNER_TEXT, halves(`flood-${id}`)[0]), `partial ${id}`);
  assert.is(link.partial.messages, 16);
  const held = link.partial.bytes;
  // A flood of new ones is refused one by one, and holds nothing.
  for (let id = 100; id < 400; id++) await send(encodeFragment(id, 0, 2, INNER_TEXT, new Uint8Array(1024)), `flood ${id}`, 'payload_too_large');
  assert.equal(link.partial, { messages: 16, bytes: held }, 'the flood added nothing');

  // Forged headers against messages in progress: each drops its message and answers once.
  await send(encodeFragment(1, 0, 2, INNER_TEXT, halves('flood-1')[0]), 'a duplicate index', 'invalid_request');
  await send(encodeFragment(2, 1, 3, INNER_TEXT, halves('flood-2')[1]), 'a changed count', 'invalid_request');
  await send(encodeFragment(3, 1, 2, INNER_BINARY, halves('flood-3')[1]), 'a changed inner kind', 'invalid_request');
  await send(encodeFragment(4, 1, 2, INNER_TEXT, new Uint8Array(500)), 'a last chunk longer than the first', 'invalid_request');
  assert.is(link.partial.messages, 12);
  // The rest of a message rejected before its last fragment is dropped quietly: one error per message.
  for (let id = 1; id <= 2; id++) await send(encodeFragment(id, 1, 2, INNER_TEXT, halves(`flood-${id}`)[1]), `the rest of rejected message ${id}`);
  assert.is(link.partial.messages, 12);

  // Forged headers on new messages.
  const chunk = new Uint8Array(64).fill(0x20);
  await send(encodeFragment(500, 5, 2, INNER_TEXT, chunk), 'an index past the count', 'invalid_request');
  await send(encodeFragment(501, 0xffffffff, 0xffffffff, INNER_TEXT, chunk), 'an index of -1', 'invalid_request');
  await send(encodeFragment(502, 0, 0, INNER_TEXT, chunk), 'a count of 0', 'invalid_request');
  await send(encodeFragment(503, 0, 1, INNER_TEXT, chunk), 'a count of 1', 'invalid_request');
  await send(encodeFragment(504, 0, 0xffffffff, INNER_TEXT, chunk), 'a count of -1 (4 billion)', 'payload_too_large');
  await send(encodeFragment(505, 0xfffffffe, 0xffffffff, INNER_TEXT, chunk), 'the last of 4 billion', 'payload_too_large');
  await send(encodeFragment(506, 0, 300, INNER_TEXT, new Uint8Array(MAX_FRAME - 14)), 'a total over 64 MiB from the first fragment', 'payload_too_large');
  await send(encodeFragment(507, 0, 2, 7, chunk), 'an unknown inner kind', 'invalid_request');
  await send(encodeFragment(508, 0, 2, INNER_TEXT, new Uint8Array(0)), 'an empty chunk', 'invalid_request');
  await send(new Uint8Array([FRAME_FRAGMENT, 0, 0, 1, 253, 0, 0, 0, 0]), 'a truncated header', 'invalid_request');
  // The last fragment of a message never started opens it (ids are the sender's to choose)...
  await send(encodeFragment(600, 1, 2, INNER_TEXT, halves('stray')[1]), 'a last fragment first');
  assert.is(link.partial.messages, 13);
  // ...and its first completes it.
  await send(encodeFragment(600, 0, 2, INNER_TEXT, halves('stray')[0]), 'its first fragment');
  // Messages caught in the flood still complete, with their own answers.
  for (let id = 5; id <= 16; id++) await send(encodeFragment(id, 1, 2, INNER_TEXT, halves(`flood-${id}`)[1]), `the end of partial ${id}`);
  assert.equal(link.partial, { messages: 0, bytes: 0 }, 'no reassembly state is left');
  // A proper fragmented request works after it all.
  const bytes = encoder.encode(JSON.stringify({ action: 'echo', request_id: 'after-flood', data: 'z'.repeat(MAX_FRAME) }));
  for (const frame of fragment(bytes, INNER_TEXT, 9, MAX_FRAME)) await send(frame, 'a good fragmented request');
  assert.is(wire.frames.at(-1)?.data, 'z'.repeat(MAX_FRAME));
  await wire.settled('the fragment flood');
  await healthyRun.stop();
});

test('data channel: partial messages on all of a session\'s channels share one maxMessageBytes budget', async () => {
  // A small cap, so going past it takes a few hundred KB rather than 64 MiB.
  const cap = 1_000_000;
  const server = await startServer({ maxMessageBytes: cap });
  const peers: RawPeer[] = [];
  try {
    const raw = await rawSession(server, peers);
    const [a, b, c] = [await raw.open('a'), await raw.open('b'), await raw.open('c')];
    const held = () => [...server.app.sessions.get(raw.sessionId).channels].reduce((sum, link) => sum + link.partial.bytes, 0);
    /** A text request of exactly `size` bytes, in fragments as big as a frame allows. */
    const fragments = (id: string, size: number, messageId: number) => {
      const head = `{"action":"echo","request_id":"${id}","data":"`;
      return fragment(encoder.encode(`${head}${'z'.repeat(size - head.length - 2)}"}`), INNER_TEXT, messageId, MAX_FRAME);
    };
    const quiet = { kind: 'silent' } as const;
    const tooLarge = { kind: 'error', code: 'payload_too_large', id: undefined } as const;

    // Channel a holds three quarters of the cap in a message it has not finished.
    const big = fragments('a-big', 3 * (MAX_FRAME - 14) + 100, 1);
    for (const frame of big.slice(0, -1)) await a.exchange(frame, quiet, 'most of a message on a');
    assert.is(held(), 3 * (MAX_FRAME - 14));
    // Another channel of the same session cannot hold more on top: opening channels does not multiply the cap.
    const other = fragments('b-big', 2 * (MAX_FRAME - 14), 2);
    await b.exchange(other[0], tooLarge, 'a partial message on b past the session\'s budget');
    await b.exchange(other[1], quiet, 'the rest of the refused message is dropped');
    assert.is(held(), 3 * (MAX_FRAME - 14), 'b holds nothing');
    // Finishing a's message frees the budget for b.
    await a.exchange(big[big.length - 1], { kind: 'request', action: 'echo', id: 'a-big' }, 'the end of a\'s message');
    assert.is(held(), 0);
    await b.exchange(other[0], quiet, 'b\'s message, now within budget');
    // A channel that closes with a message unfinished gives its bytes back.
    for (const frame of fragments('c-big', 3 * (MAX_FRAME - 14), 3).slice(0, 2)) await c.exchange(frame, quiet, 'a partial message on c');
    assert.ok(held() > cap - (MAX_FRAME - 14), `most of the budget is held (${held()})`);
    c.channel.close();
    await until(() => held() === MAX_FRAME - 14, 'c\'s bytes to be released when it closes');
    await b.exchange(other[1], { kind: 'request', action: 'echo', id: 'b-big' }, 'the end of b\'s message');
    assert.is(held(), 0);
    await a.settled('a');
    await b.settled('b');
  } finally {
    await server.close();
    for (const peer of peers) peer.close();
  }
});

test('afterwards: the abused session and a new one answer correctly, nothing in flight, no reassembly state', async () => {
  const { server, raw, healthy, peers } = await world();
  const health = await raw.primary.request({ action: 'health', request_id: 'after-health' });
  assert.is(health.status, 'ok');
  const echo = await raw.primary.request({ action: 'echo', request_id: 'after-echo', data: { ok: [1, 'two'] } });
  assert.equal(echo.data, { ok: [1, 'two'] });
  assert.is((await healthy.request('health')).status, 'ok');
  assert.equal((await healthy.request('echo', { data: 'still here' })).data, 'still here');

  const fresh = await rawSession(server, peers);
  assert.is((await fresh.primary.request({ action: 'health', request_id: 'fresh' })).status, 'ok');
  const session = server.app.sessions.get(raw.sessionId);
  assert.is(session.state, 'connected', 'the abused session is still connected');
  await until(() => server.app.dispatcher.inFlightCount === 0, 'nothing in flight');
  for (const id of [raw.sessionId, fresh.sessionId, healthy.sessionId]) {
    for (const link of server.app.sessions.get(id).channels) {
      assert.equal(link.partial, { messages: 0, bytes: 0 }, `no reassembly state on "${link.channel.label}"`);
    }
  }
  assert.is(session.caller.inFlight.size, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// The WebSocket transport: the same oracle over /v1/ws, and frames no WebSocket client library would send.

/** Opens a raw TCP socket and upgrades it to a WebSocket by hand. */
async function rawSocket(url: URL): Promise<{ socket: Socket; received: () => Buffer }> {
  const socket = tcpConnect(Number(url.port), url.hostname);
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    `GET ${WEBSOCKET_PATH} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await until(() => data.includes('\r\n\r\n'), 'the upgrade response');
  const head = data.subarray(0, data.indexOf('\r\n\r\n') + 4);
  assert.match(head.toString(), /^HTTP\/1\.1 101/, 'upgraded');
  return { socket, received: () => data.subarray(head.length) };
}

/** One WebSocket frame as a client writes it: FIN, the opcode, masked with `mask` (a zero mask is still a mask). */
function wsFrame(opcode: number, payload: Uint8Array, { fin = true, masked = true } = {}): Buffer {
  const length = payload.length < 126 ? [payload.length] : [126, payload.length >> 8, payload.length & 0xff];
  const mask = masked ? [0x11, 0x22, 0x33, 0x44] : [];
  const body = Buffer.from(payload.map((byte, i) => (masked ? byte ^ mask[i % 4] : byte)));
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, (masked ? 0x80 : 0) | length[0], ...length.slice(1), ...mask]), body]);
}

/** The code of the close frame the server sends first (it then waits for ours, which never comes). */
async function closeCode(raw: { socket: Socket; received: () => Buffer }, what: string): Promise<number> {
  await until(() => raw.received().length >= 4, `${what}: a close frame`);
  const bytes = raw.received();
  assert.is(bytes[0], 0x88, `${what}: the first frame is a close frame (got ${bytes.subarray(0, 16).toString('hex')})`);
  return bytes.readUInt16BE(2);
}

test('WebSocket: random and mutated requests, deep nesting and binary garbage: each gets its answer', async () => {
  const { server } = await world();
  const url = new URL(WEBSOCKET_PATH, server.url.replace('http', 'ws'));
  const client = await WebSocketClient.connect(url);
  const frames: Frame[] = [];
  // Every frame sent raw is unsolicited to the client library: it reaches here, in order.
  client.onUnsolicited = (frame) => frames.push(frame);
  const rng = new Rng(SEED ^ 0x3e3);
  let accounted = 0;
  const exchange = async (data: string | Uint8Array<ArrayBuffer>, expected: Expected, what: string) => {
    client.send(data);
    await soon(() => frames.length > accounted, `${what}: an answer`);
    checkAnswer(frames.slice(accounted), expected, what);
    accounted = frames.length;
  };
  const expectWsBinary = (bytes: Uint8Array): Expected => {
    if (bytes[0] !== FRAME_ENVELOPE) return { kind: 'error', code: 'invalid_request', id: undefined, field: 'frame_kind' };
    return expectBinary(bytes, new Reassembler({ maxMessageBytes: MAX_MESSAGE_BYTES }), false);
  };

  for (let i = 0; i < 120; i++) {
    const text = fuzzText(rng);
    await exchange(text, expectText(text, false), reproduce(i, text));
  }
  const deep = `{"action":"echo","request_id":"ws-deep","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  await exchange(deep, { kind: 'error', code: 'invalid_request', id: 'ws-deep', field: 'data' }, 'an echo of 100,000 nested arrays');
  for (let kind = 0; kind < 256; kind++) {
    const bytes = rng.bytes(1 + rng.int(32));
    bytes[0] = kind;
    await exchange(bytes, expectWsBinary(bytes), reproduce(kind, bytes));
  }
  await exchange(new Uint8Array(0), expectWsBinary(new Uint8Array(0)), 'an empty binary message');
  await sleep(100);
  assert.is(frames.length, accounted, 'no message got a second answer');
  assert.is((await client.request({ action: 'health' })).frame.status, 'ok');
  await client.close();
});

test('WebSocket framing: invalid UTF-8 text and protocol violations close that socket only, with the right code', async () => {
  const { server } = await world();
  const url = new URL(WEBSOCKET_PATH, server.url.replace('http', 'ws'));
  const before = server.app.websockets.size;
  const bad = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
  const cases: [string, Buffer[], number][] = [
    ['a text frame of invalid UTF-8', [wsFrame(0x1, bad)], 1007],
    ['invalid UTF-8 split over two fragments', [wsFrame(0x1, new Uint8Array([0x22, 0xe6]), { fin: false }), wsFrame(0x0, new Uint8Array([0x28, 0x22]))], 1007],
    ['an unmasked client frame', [wsFrame(0x1, encoder.encode('{"action":"health"}'), { masked: false })], 1002],
    ['a reserved opcode', [wsFrame(0x3, new Uint8Array([1, 2, 3]))], 1002],
    ['a continuation with nothing to continue', [wsFrame(0x0, encoder.encode('{}'))], 1002],
    ['a fragmented ping', [wsFrame(0x9, new Uint8Array(4), { fin: false })], 1002],
  ];
  for (const [what, frames, code] of cases) {
    const raw = await rawSocket(url);
    for (const frame of frames) raw.socket.write(frame);
    assert.is(await closeCode(raw, what), code, `${what}: close code`);
    raw.socket.destroy();
  }
  await until(() => server.app.websockets.size === before, 'every abused socket to be released');
  const client = await WebSocketClient.connect(url);
  assert.is((await client.request({ action: 'health' })).frame.status, 'ok', 'a new socket is served');
  await client.close();
});

// ---------------------------------------------------------------------------------------------------------------
// The native host: Chrome's 4-byte length prefix.

/** Normalizes the envelope's answer shape back to a frame, so one checker reads both. */
function asFrame(answer: Frame): Frame {
  if (!('success' in answer)) return answer;
  const head = 'request_id' in answer ? { request_id: answer.request_id } : {};
  return answer.success ? { ...head, ...(answer.data as Frame) } : { ...head, type: 'error', ...(answer.error as Frame) };
}

function expectNative(text: string): Expected {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeUtf8(encoder.encode(text), 'Message'));
  } catch {
    return { kind: 'error', code: 'invalid_json', id: undefined };
  }
  const assign = () => ASSIGNED_MARK;
  return fromDecoded(isRouteEnvelope(parsed) ? decodeRouteEnvelope(parsed, assign) : decodeRequestObject(parsed, assign), false);
}

test('native messaging: the length reader: lying, huge and truncated lengths never throw, never hold more than a message, and resync', () => {
  const rng = new Rng(SEED ^ 0x4a7);
  const max = 1024;
  const message = (json: string) => encodeNativeMessage(json);
  // A stream of good messages and oversize ones (whose bytes really follow), cut into random pieces: the same
  // messages and errors come out however it is cut.
  const parts: Buffer[] = [];
  const expected: string[] = [];
  for (let i = 0; i < 150; i++) {
    if (rng.chance(0.2)) {
      const length = max + 1 + rng.int(3 * max);
      parts.push(encodeLength(length), Buffer.alloc(length, 0x78));
      expected.push(`error payload_too_large`);
    } else {
      const json = JSON.stringify({ i, pad: 'p'.repeat(rng.int(max - 40)) });
      parts.push(message(json));
      expected.push(json);
    }
  }
  const stream = Buffer.concat(parts);
  const show = (inputs: NativeInput[]) => inputs.map((input) => (input.kind === 'message' ? input.bytes.toString() : `error ${input.error.code}`));
  for (let trial = 0; trial < 20; trial++) {
    const reader = new NativeMessageReader(max);
    const out: NativeInput[] = [];
    for (let at = 0; at < stream.length; ) {
      const size = 1 + rng.int(trial % 2 ? 7 : 3 * max);
      out.push(...reader.push(stream.subarray(at, at + size)));
      assert.ok(reader.buffered <= max, `holds at most one message (${reader.buffered} bytes)`);
      at += size;
    }
    assert.equal(show(out), expected, `FUZZ_SEED=${SEED}: cut into pieces, trial ${trial}`);
    assert.is(reader.end(), undefined);
  }
  // Random bytes as a stream: only typed errors and messages, whatever they say.
  for (let trial = 0; trial < 50; trial++) {
    const reader = new NativeMessageReader(max);
    const out = reader.push(Buffer.from(rng.bytes(rng.int(3 * max))));
    for (const input of out) if (input.kind === 'error') assert.ok(isErrorCode(input.error.code));
    const end = reader.end();
    if (end) assert.is(end.code, 'invalid_request');
  }
});

test('native host: random and mutated messages, deep nesting in both request forms, then a length that lies', async () => {
  const server = await startServer();
  const host: NativeHostClient = await spawnNativeHost({ env: { TABAGENT_DATA_DIR: server.dataDir } });
  try {
    const frames: Frame[] = [];
    host.onFrame((frame) => frames.push(frame));
    let accounted = 0;
    const exchange = async (bytes: Buffer, expected: Expected, what: string) => {
      host.sendRaw(bytes);
      await soon(() => frames.length > accounted, `${what}: an answer; stderr:\n${host.stderr().slice(-1500)}`);
      checkAnswer(frames.slice(accounted).map(asFrame), expected, what);
      accounted = frames.length;
    };
    const rng = new Rng(SEED ^ 0x7a7);
    for (let i = 0; i < 100; i++) {
      let text = fuzzText(rng);
      // Sometimes the TabAgent envelope form, with the same mutations inside.
      if (rng.chance(0.2)) text = JSON.stringify({ route: rng.pick(['health', 'Echo', 'chat', 'nope']), request_id: `env-${i}`, payload: randomJson(rng, 2) });
      await exchange(encodeNativeMessage(text), expectNative(text), reproduce(i, text));
    }
    const arrays = '['.repeat(100_000) + ']'.repeat(100_000);
    const deep = `{"action":"echo","request_id":"n-deep","data":${arrays}}`;
    await exchange(encodeNativeMessage(deep), { kind: 'error', code: 'invalid_request', id: 'n-deep', field: 'data' }, 'a deep echo');
    const deepEnvelope = `{"route":"echo","request_id":"n-deep-env","payload":{"data":${arrays}}}`;
    await exchange(encodeNativeMessage(deepEnvelope), { kind: 'error', code: 'invalid_request', id: 'n-deep-env', field: 'data' }, 'a deep echo in an envelope');
    assert.is(frames.at(-1)?.success, false, 'answered in the envelope\'s shape');

    await exchange(encodeNativeMessage('{"action":"health","request_id":"n-ok"}'), { kind: 'request', action: 'health', id: 'n-ok' }, 'health after it all');
    // A length that lies short: the message's tail is read as the next length, here 577 MB (over the cap), whose
    // bytes the host then skips. Chrome never sends this; the host answers both and stays well-formed.
    host.sendRaw(Buffer.concat([encodeLength(5), Buffer.from('{"action":"health"}')]));
    await until(() => frames.length >= accounted + 2, 'answers to a lying length', 10_000);
    assert.equal(frames.slice(accounted).map((f) => f.code), ['invalid_json', 'payload_too_large']);
    assert.is(await host.close(), 0, 'the host exits cleanly when the port closes');
    assert.equal(host.violations, [], 'stdout held nothing but native messages');
  } finally {
    host.kill('SIGKILL');
    await server.close();
  }
});

test.run();
