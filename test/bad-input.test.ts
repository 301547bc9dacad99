import { TRPCClientError } from '@trpc/client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppDeps } from '../src/app.ts';
import type { AppError } from '../src/client/index.ts';
import type { TabAgentClient } from '../src/client/index.ts';
import { createSignalingClient } from '../src/client/signaling.ts';
import type { ConfigInput } from '../src/config.ts';
import type { Handlers } from '../src/protocol/handlers.ts';
import { FRAME_FRAGMENT, INNER_TEXT, encodeEnvelope, encodeFragment, fragment } from '../src/protocol/framing.ts';
import { FrameInbox, opened } from './fixtures/raw-peer.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const test = suite('bad input on the data channel');

/** The small reassembly limit the abuse server runs with, so oversize fragmented messages are cheap to make. */
const MAX_MESSAGE_BYTES = 1024;

type Frame = Record<string, unknown>;

interface Raw {
  client: TabAgentClient;
  inbox: FrameInbox;
  /** Sends one frame and returns the first frame the server sends back after it. */
  send(data: string | Uint8Array<ArrayBuffer>, match?: (frame: Frame) => boolean): Promise<Frame>;
}

/**
 * Connects a client with `server.client()`, opens a raw channel of its own on the same peer (the server serves
 * client-opened channels), and waits until the server answers on it.
 */
async function rawChannel(server: TestServer): Promise<Raw> {
  const client = await server.client();
  const channel = await opened(client.pc.createDataChannel('raw'));
  const inbox = new FrameInbox(channel);
  // The server attaches its handler when its side of the channel appears; ping until it answers.
  const deadline = Date.now() + 10_000;
  for (let attempt = 0; ; attempt++) {
    const id = `ready-${attempt}`;
    channel.send(JSON.stringify({ action: 'health', request_id: id }));
    try {
      await inbox.next((f) => f.request_id === id, 'the raw channel to be served', 0, 250);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
  return {
    client,
    inbox,
    send: (data, match) => inbox.exchange(data, match, `an answer to ${typeof data === 'string' ? data.slice(0, 80) : `${data.length} bytes`}`),
  };
}

async function withServer(body: (server: TestServer) => Promise<void>, overrides: ConfigInput = {}, deps: AppDeps = {}) {
  const server = await startServer({ maxMessageBytes: MAX_MESSAGE_BYTES, ...overrides }, deps);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

function expectError(frame: Frame, code: string, what: string, requestId?: string, field?: string): void {
  assert.is(frame.type, 'error', `${what}: an error frame (got ${JSON.stringify(frame).slice(0, 300)})`);
  assert.is(frame.code, code, `${what}: code (message: ${String(frame.message)})`);
  assert.type(frame.message, 'string', `${what}: message`);
  if (requestId === undefined) assert.not.ok('request_id' in frame, `${what}: no request_id (got ${String(frame.request_id)})`);
  else assert.is(frame.request_id, requestId, `${what}: request_id`);
  if (field !== undefined) assert.is((frame.details as { field?: string } | undefined)?.field, field, `${what}: details.field`);
}

/** A fragment frame with any header values, valid or not. */
function forgedFragment(messageId: number, index: number, count: number, chunk: Uint8Array, innerKind = INNER_TEXT): Uint8Array<ArrayBuffer> {
  return encodeFragment(messageId, index, count, innerKind, chunk);
}

/** An envelope frame whose header bytes are given raw. */
function rawEnvelope(header: Uint8Array, declaredLength = header.length): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(5 + header.length);
  frame[0] = 0x02;
  new DataView(frame.buffer).setUint32(1, declaredLength);
  frame.set(header, 5);
  return frame;
}

/** Every kind of bad frame and the answer it must get; the last test replays them all on one session. */
interface Abuse {
  what: string;
  data: () => string | Uint8Array<ArrayBuffer>;
  code: string;
  requestId?: string;
  field?: string;
}

const textAbuse: Abuse[] = [
  { what: 'not JSON', data: () => 'this is {not json', code: 'invalid_json' },
  { what: 'a JSON array', data: () => '[{"action":"health"}]', code: 'invalid_request' },
  { what: 'a JSON number', data: () => '42', code: 'invalid_request' },
  { what: 'JSON null', data: () => 'null', code: 'invalid_request' },
  { what: 'a JSON string', data: () => '"health"', code: 'invalid_request' },
  { what: 'no action', data: () => '{"request_id":"m"}', code: 'invalid_request', requestId: 'm', field: 'action' },
  { what: 'a numeric action', data: () => '{"action":42,"request_id":"n"}', code: 'invalid_request', requestId: 'n', field: 'action' },
  { what: 'a prototype key as action', data: () => '{"action":"__proto__","request_id":"p"}', code: 'unknown_action', requestId: 'p' },
  { what: 'a prototype key as request_type', data: () => '{"request_type":"constructor","request_id":"q"}', code: 'unknown_action', requestId: 'q' },
  { what: 'an unknown action', data: () => '{"action":"nope","request_id":"x"}', code: 'unknown_action', requestId: 'x' },
  { what: 'an unknown request_type', data: () => '{"request_type":"Nope","request_id":"y"}', code: 'unknown_action', requestId: 'y' },
  {
    what: 'a wrongly typed field',
    data: () => '{"action":"set_params","params":{"temperature":"hot"},"request_id":"t"}',
    code: 'invalid_request',
    requestId: 't',
    field: 'params.temperature',
  },
  { what: 'an unknown field', data: () => '{"action":"health","bogus":1,"request_id":"b"}', code: 'invalid_request', requestId: 'b', field: 'bogus' },
  { what: 'an object request_id', data: () => '{"action":"health","request_id":{}}', code: 'invalid_request', field: 'request_id' },
  { what: 'a boolean request_id', data: () => '{"action":"health","request_id":true}', code: 'invalid_request', field: 'request_id' },
  { what: 'a fractional request_id', data: () => '{"action":"health","request_id":1.5}', code: 'invalid_request', field: 'request_id' },
  { what: 'an empty request_id', data: () => '{"action":"health","request_id":""}', code: 'invalid_request', field: 'request_id' },
  {
    what: 'a 129-character request_id',
    data: () => JSON.stringify({ action: 'health', request_id: 'r'.repeat(129) }),
    code: 'invalid_request',
    field: 'request_id',
  },
  {
    what: 'chat naming no model, with none selected and none to run',
    data: () => '{"action":"chat","messages":[{"role":"user","content":"hi"}],"request_id":"c"}',
    code: 'invalid_request',
    requestId: 'c',
    field: 'model',
  },
  {
    what: 'stop_generation of a request not in flight',
    data: () => '{"action":"stop_generation","target_request_id":"ghost","request_id":"s"}',
    code: 'not_found',
    requestId: 's',
  },
];

let nextForgedId = 1000;
const binaryAbuse: Abuse[] = [
  { what: 'an unknown binary frame kind', data: () => new Uint8Array([0x07, 1, 2, 3]), code: 'invalid_request' },
  {
    what: 'a fragment claiming 4 billion fragments',
    data: () => forgedFragment(nextForgedId++, 0, 0xffffffff, new Uint8Array(16).fill(0x41)),
    code: 'payload_too_large',
  },
  {
    what: 'a fragment whose message exceeds maxMessageBytes',
    data: () => forgedFragment(nextForgedId++, 0, 3, new Uint8Array(600).fill(0x41)),
    code: 'payload_too_large',
  },
  { what: 'a fragment of a one-fragment message', data: () => forgedFragment(nextForgedId++, 0, 1, new Uint8Array(8)), code: 'invalid_request' },
  { what: 'a fragment index past its count', data: () => forgedFragment(nextForgedId++, 5, 2, new Uint8Array(8)), code: 'invalid_request' },
  { what: 'a fragment of unknown inner kind', data: () => forgedFragment(nextForgedId++, 0, 2, new Uint8Array(8), 9), code: 'invalid_request' },
  { what: 'a truncated fragment header', data: () => new Uint8Array([FRAME_FRAGMENT, 0, 0, 0]), code: 'invalid_request' },
  { what: 'invalid UTF-8 in an envelope header', data: () => rawEnvelope(new Uint8Array([0xff, 0xfe, 0xc3, 0x28])), code: 'invalid_json' },
  { what: 'an envelope header longer than its frame', data: () => rawEnvelope(new Uint8Array([0x7b]), 4096), code: 'invalid_request' },
  { what: 'an envelope header that is not JSON', data: () => encodeEnvelope('{nope', new Uint8Array([1, 2])), code: 'invalid_json' },
];

async function expectAbuse(raw: Raw, abuse: Abuse): Promise<void> {
  const frame = await raw.send(abuse.data());
  expectError(frame, abuse.code, abuse.what, abuse.requestId, abuse.field);
}

async function expectHealthy(raw: Raw, what: string): Promise<void> {
  const id = `health-${Math.random().toString(36).slice(2)}`;
  const frame = await raw.send(JSON.stringify({ action: 'health', request_id: id }), (f) => f.request_id === id);
  assert.is(frame.type, 'health', `${what}: health answers`);
  assert.is(frame.status, 'ok', `${what}: status ok`);
  const typed = await raw.client.request('health');
  assert.is(typed.status, 'ok', `${what}: the client's own channel answers too`);
}

test('malformed text frames get typed errors, echoing the request_id when it was usable', () =>
  withServer(async (server) => {
    const raw = await rawChannel(server);
    for (const abuse of textAbuse) await expectAbuse(raw, abuse);
  }),
);

test('the seed request_type aliases work, and a request without request_id gets a srv- id', () =>
  withServer(async (server) => {
    const raw = await rawChannel(server);
    const health = await raw.send('{"request_type":"Health","request_id":"h"}');
    assert.is(health.request_id, 'h');
    assert.is(health.type, 'health');
    assert.is(health.status, 'ok');
    const params = await raw.send('{"request_type":"GetParams"}');
    assert.is(params.type, 'params');
    assert.match(String(params.request_id), /^srv-\d+$/);
    assert.equal(params.params, {});
    const numeric = await raw.send('{"action":"health","request_id":7}');
    assert.is(numeric.request_id, '7', 'a numeric request_id is answered as a string');
  }),
);

test('malformed binary frames get invalid_request, payload_too_large or invalid_json error frames', () =>
  withServer(async (server) => {
    const raw = await rawChannel(server);
    for (const abuse of binaryAbuse) await expectAbuse(raw, abuse);

    // Well-formed binary requests on the same channel still work: an envelope, and a fragmented text frame.
    const echoed = await raw.send(encodeEnvelope('{"action":"echo","request_id":"env","data":1}', new Uint8Array([9, 9, 9])));
    assert.is(echoed.type, 'echo', `an envelope request answers (got ${JSON.stringify(echoed)})`);
    assert.is(echoed.attachment_bytes, 3);
    assert.equal([...(echoed.attachment as Uint8Array)], [9, 9, 9], "the attachment comes back in a binary envelope");
    const text = new TextEncoder().encode(JSON.stringify({ action: 'echo', request_id: 'frag', data: 'z'.repeat(300) }));
    const [first, second] = fragment(text, INNER_TEXT, 77, 200);
    raw.inbox.channel.send(first);
    const answer = await raw.send(second, (f) => f.request_id === 'frag');
    assert.is(answer.type, 'echo', 'a fragmented text request answers');
    assert.is(answer.data, 'z'.repeat(300));
  }),
);

test('an unfragmented frame over maxMessageBytes is refused with payload_too_large', () =>
  withServer(async (server) => {
    const raw = await rawChannel(server);
    const big = JSON.stringify({ action: 'echo', request_id: 'big', data: 'x'.repeat(MAX_MESSAGE_BYTES * 2) });
    const frame = await raw.send(big);
    expectError(frame, 'payload_too_large', `a ${big.length}-byte text frame with maxMessageBytes ${MAX_MESSAGE_BYTES}`);
    const envelope = encodeEnvelope('{"action":"echo","request_id":"bigenv"}', new Uint8Array(MAX_MESSAGE_BYTES * 2));
    expectError(await raw.send(envelope), 'payload_too_large', `a ${envelope.length}-byte envelope`);
  }),
);

test('a request_id already in flight on the session is a conflict, and the first request still finishes', () => {
  let started = 0;
  const engines: Partial<Handlers> = {
    chat: async (_params, ctx) => {
      started++;
      await new Promise((resolve) => setTimeout(resolve, 300));
      ctx.signal.throwIfAborted();
      return { response: 'slow hello', model: 'slow', finish_reason: 'stop' };
    },
  };
  return withServer(
    async (server) => {
      const raw = await rawChannel(server);
      const chat = (id: string) => JSON.stringify({ action: 'chat', request_id: id, messages: [{ role: 'user', content: 'hi' }] });
      const from = raw.inbox.frames.length;
      raw.inbox.channel.send(chat('dup'));
      await until(() => started === 1, 'the first chat to start');
      const conflict = await raw.send(chat('dup'), (f) => f.request_id === 'dup');
      expectError(conflict, 'conflict', 'the second request with the same id', 'dup');
      const done = await raw.inbox.next((f) => f.request_id === 'dup' && f.type === 'chat_response', 'the first chat to finish', from);
      assert.is(done.response, 'slow hello');
      assert.is(started, 1, 'the duplicate never reached the engine');
      // Once it has finished, the id is free again.
      const again = await raw.send(chat('dup'), (f) => f.request_id === 'dup');
      assert.is(again.type, 'chat_response');
    },
    {},
    { engines },
  );
});

test('after every kind of abuse the same session and a second session still answer health, and the server is up', () =>
  withServer(async (server) => {
    const raw = await rawChannel(server);
    for (const abuse of [...textAbuse, ...binaryAbuse, ...textAbuse]) await expectAbuse(raw, abuse);
    await expectHealthy(raw, 'the abused session');
    const info = await createSignalingClient({ url: server.url }).webrtc.session.query({ sessionId: raw.client.sessionId });
    assert.is(info.state, 'connected', 'the abused session is still connected');

    const second = await rawChannel(server);
    await expectHealthy(second, 'a second session');
    const root = await fetch(`${server.url}/`);
    assert.is(root.status, 200, 'the HTTP server still answers');
    assert.is((await createSignalingClient({ url: server.url }).rpc.health.query()).status, 'ok');
  }),
);

test('an answer JSON cannot carry is answered internal on the server\'s channel and a client-opened one; the session serves on', () =>
  withServer(
    async (server) => {
      const client = await server.client();
      const onPrimary = await client.generate({ prompt: 'x' }).catch((error: AppError) => error);
      assert.is((onPrimary as AppError).code, 'internal');
      const raw = await rawChannel(server);
      const onRaw = await raw.send('{"action":"generate","prompt":"x","request_id":"big"}', (f) => f.request_id === 'big');
      expectError(onRaw, 'internal', 'the unencodable answer', 'big');
      assert.is((await client.health()).status, 'ok');
      assert.is(server.app.dispatcher.inFlightCount, 0);
    },
    {},
    // A handler whose answer JSON.stringify throws on: the transports must still answer.
    { engines: { generate: async () => ({ response: 'x', model: 'm', finish_reason: 'stop', extra: 1n }) as never } },
  ),
);

test('once shutdown has begun a new request gets shutting_down, in-flight work finishes, and offers get 503', () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const engines: Partial<Handlers> = {
    generate: async (_params, ctx) => {
      await Promise.race([gate, new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))]);
      ctx.signal.throwIfAborted();
      return { response: 'finished in the grace period', model: 'held', finish_reason: 'stop' };
    },
  };
  return withServer(
    async (server) => {
      const raw = await rawChannel(server);
      const from = raw.inbox.frames.length;
      raw.inbox.channel.send(JSON.stringify({ action: 'generate', prompt: 'hold', request_id: 'long' }));
      await until(() => server.app.dispatcher.inFlightCount === 1, 'the held request to be in flight');

      const closing = server.app.close(5_000);
      try {
        const notice = await raw.inbox.next((f) => f.type === 'event' && f.event === 'shutting_down', 'the shutting_down notice', from);
        assert.equal(notice.data, { grace_ms: 5_000 });

        // The dispatcher refuses new work with a typed error; the channel stays open for in-flight answers.
        // health still answers, so a caller can watch the server stop.
        const health = await raw.send('{"action":"health","request_id":"late"}', (f) => f.request_id === 'late');
        assert.is(health.type, 'health');
        assert.is(health.status, 'shutting_down');
        expectError(await raw.send('{"action":"get_params","request_id":"late2"}', (f) => f.request_id === 'late2'), 'shutting_down', 'get_params', 'late2');
        assert.is(raw.inbox.channel.readyState, 'open');

        const api = createSignalingClient({ url: server.url });
        let error: unknown;
        try {
          await api.webrtc.offer.mutate({});
        } catch (thrown) {
          error = thrown;
        }
        assert.ok(error instanceof TRPCClientError, 'webrtc.offer fails');
        assert.is(error.data?.code, 'SERVICE_UNAVAILABLE');
        assert.is(error.data?.appCode, 'shutting_down');
        assert.is(error.data?.httpStatus, 503);
        const rest = await fetch(`${server.url}/v1/webrtc/offer`, { method: 'POST', body: '{}' });
        assert.is(rest.status, 503);
        assert.is((await rest.json()).error.code, 'shutting_down');
        assert.is(server.app.sessions.size, 1, 'no session was created');
      } finally {
        release();
      }
      const finished = await raw.inbox.next((f) => f.request_id === 'long', 'the held request to finish', from);
      assert.is(finished.type, 'generate_response', `the in-flight request finishes within the grace (got ${JSON.stringify(finished)})`);
      await closing;
      await until(() => raw.inbox.closed, 'the server to close the channel');
      assert.is(server.app.sessions.size, 0);
    },
    {},
    { engines },
  );
});

test.run();
