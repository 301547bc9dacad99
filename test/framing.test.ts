import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError, type ErrorCode } from '../src/errors.ts';
import {
  FRAGMENT_HEADER_BYTES,
  INNER_BINARY,
  INNER_TEXT,
  decodeEnvelope,
  encodeEnvelope,
  encodeFragment,
  fragment,
  fragments,
  utf8Length,
} from '../src/protocol/framing.ts';
import { Reassembler, ReassemblyBudget, type Reassembled } from '../src/protocol/reassembler.ts';

const MAX = 262144;
const CHUNK = MAX - FRAGMENT_HEADER_BYTES;
const MiB = 1024 * 1024;

function throwsAppError(fn: () => unknown, code: ErrorCode, messageIncludes?: string): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, AppError);
    assert.is((error as AppError).code, code, (error as AppError).message);
    if (messageIncludes) assert.ok((error as AppError).message.includes(messageIncludes), (error as AppError).message);
    return;
  }
  assert.unreachable(`expected AppError ${code}`);
}

function forge(id: number, index: number, count: number, chunk: Uint8Array | number, innerKind = INNER_BINARY): Uint8Array {
  const body = typeof chunk === 'number' ? new Uint8Array(chunk).fill(7) : chunk;
  return encodeFragment(id, index, count, innerKind, body);
}

function patterned(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >>> 8)) & 0xff;
  return bytes;
}

/** Compares bytes without letting uvu print a multi-MiB diff. */
function sameBytes(actual: Uint8Array | false | null | undefined, expected: Uint8Array, what = 'bytes'): void {
  assert.ok(actual, `${what}: missing`);
  assert.is(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.is(at, -1, `${what}: first difference at ${at}`);
}

function reassembleAll(r: Reassembler, frames: Uint8Array[]): Reassembled {
  for (let i = 0; i < frames.length - 1; i++) assert.is(r.push(frames[i]), null, `fragment ${i} completed early`);
  const done = r.push(frames[frames.length - 1]);
  assert.ok(done, 'last fragment did not complete the message');
  return done;
}

const newReassembler = (maxMessageBytes = 64 * MiB) => new Reassembler({ maxMessageBytes });

const Utf8 = suite('utf8Length');

Utf8('matches TextEncoder for ASCII, 2-, 3- and 4-byte characters and lone surrogates', () => {
  const samples = ['', 'plain', 'é', 'ü€', '日本語', '😀', 'a😀b', '\ud800', 'x\udc00y', '\ud83d', '\ufeffbom', 'é'.repeat(1000)];
  for (const s of samples) assert.is(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
});

Utf8.run();

const Envelope = suite('envelope');

Envelope('round-trips a header and payload, multi-byte header included', () => {
  const header = '{"id":1,"name":"日本😀"}';
  const payload = patterned(1000);
  const decoded = decodeEnvelope(encodeEnvelope(header, payload));
  assert.is(decoded.header, header);
  sameBytes(decoded.payload, payload);
});

Envelope('round-trips an empty payload', () => {
  const decoded = decodeEnvelope(encodeEnvelope('{}', new Uint8Array(0)));
  assert.is(decoded.header, '{}');
  assert.is(decoded.payload.length, 0);
});

Envelope('decodes from a view at an offset into a larger buffer', () => {
  const frame = encodeEnvelope('{"a":1}', patterned(10));
  const outer = new Uint8Array(frame.length + 7);
  outer.set(frame, 3);
  const decoded = decodeEnvelope(outer.subarray(3, 3 + frame.length));
  assert.is(decoded.header, '{"a":1}');
  sameBytes(decoded.payload, patterned(10));
});

Envelope('rejects short, wrong-kind and overlong-header frames as invalid_request', () => {
  throwsAppError(() => decodeEnvelope(new Uint8Array([0x02, 0, 0])), 'invalid_request');
  throwsAppError(() => decodeEnvelope(new Uint8Array(0)), 'invalid_request');
  throwsAppError(() => decodeEnvelope(new Uint8Array([0x03, 0, 0, 0, 0])), 'invalid_request');
  const forged = encodeEnvelope('{}', new Uint8Array(4));
  new DataView(forged.buffer).setUint32(1, 7);
  throwsAppError(() => decodeEnvelope(forged), 'invalid_request', 'header length');
  new DataView(forged.buffer).setUint32(1, 0xffffffff);
  throwsAppError(() => decodeEnvelope(forged), 'invalid_request', 'header length');
});

Envelope('rejects a header that is not UTF-8 as invalid_json', () => {
  const frame = new Uint8Array([0x02, 0, 0, 0, 2, 0xc3, 0x28, 1, 2]);
  throwsAppError(() => decodeEnvelope(frame), 'invalid_json');
});

Envelope.run();

const Fragment = suite('fragment');

Fragment('keeps every fragment within maxMessageSize and splits into equal chunks', () => {
  for (const size of [MAX + 1, 2 * CHUNK, 2 * CHUNK + 1, 5 * MiB]) {
    const frames = fragment(patterned(size), INNER_BINARY, 9, MAX);
    assert.is(frames.length, Math.ceil(size / CHUNK));
    assert.ok(frames.length >= 2);
    for (const frame of frames) assert.ok(frame.length <= MAX, `${frame.length} > ${MAX}`);
    for (const frame of frames.slice(0, -1)) assert.is(frame.length, MAX);
  }
});

Fragment('refuses a message that fits in one frame and a frame too small for a header', () => {
  throwsAppError(() => fragment(patterned(CHUNK), INNER_BINARY, 1, MAX), 'internal');
  throwsAppError(() => fragment(patterned(100), INNER_BINARY, 1, FRAGMENT_HEADER_BYTES), 'internal');
});

Fragment('fragments of several parts are the fragments of their concatenation, built one at a time', () => {
  const head = patterned(37);
  const payload = patterned(3 * CHUNK).reverse();
  const whole = new Uint8Array(head.length + payload.length);
  whole.set(head);
  whole.set(payload, head.length);
  const lazy = fragments([head, new Uint8Array(0), payload], INNER_BINARY, 5, MAX);
  const eager = fragment(whole, INNER_BINARY, 5, MAX);
  for (const [i, frame] of eager.entries()) {
    const next = lazy.next();
    assert.not.ok(next.done, `fragment ${i} missing`);
    sameBytes(next.value, frame, `fragment ${i}`);
  }
  assert.ok(lazy.next().done, 'more fragments than the concatenation has');
});

Fragment.run();

const Roundtrip = suite('fragment + Reassembler round trip');

Roundtrip('binary messages around the frame boundary and of several MiB come back byte for byte', () => {
  const r = newReassembler();
  let id = 0;
  for (const size of [CHUNK + 1, MAX - 1, MAX, MAX + 1, 2 * CHUNK, 2 * CHUNK + 1, 5 * MiB + 3]) {
    const bytes = patterned(size);
    const done = reassembleAll(r, fragment(bytes, INNER_BINARY, id++, MAX));
    assert.is(done.kind, 'binary');
    sameBytes(done.kind === 'binary' && done.bytes, bytes, `size ${size}`);
  }
  assert.is(r.pending, 0);
});

Roundtrip('text with multi-byte characters split mid-character, and a leading BOM, comes back intact', () => {
  const r = newReassembler();
  const text = '\ufeff' + '{"k":"' + 'aé日😀'.repeat(400_000) + '"}';
  const bytes = new TextEncoder().encode(text);
  assert.ok(bytes.length > 3 * MiB);
  const done = reassembleAll(r, fragment(bytes, INNER_TEXT, 42, MAX));
  assert.is(done.kind, 'text');
  assert.ok(done.kind === 'text' && done.text === text);
});

Roundtrip('fragments arriving out of order and interleaved across messages still reassemble', () => {
  const r = newReassembler();
  const one = patterned(3 * CHUNK);
  const two = patterned(2 * CHUNK - 5).reverse();
  const a = fragment(one, INNER_BINARY, 1, MAX);
  const b = fragment(two, INNER_BINARY, 2, MAX);
  assert.is(r.push(a[2]), null);
  assert.is(r.push(b[1]), null);
  assert.is(r.push(a[0]), null);
  const doneB = r.push(b[0]);
  sameBytes(doneB?.kind === 'binary' && doneB.bytes, two);
  const doneA = r.push(a[1]);
  sameBytes(doneA?.kind === 'binary' && doneA.bytes, one);
});

Roundtrip('a message exactly at maxMessageBytes is accepted', () => {
  const size = 3 * 1000 + 1;
  const r = newReassembler(size);
  const done = reassembleAll(r, fragment(patterned(size), INNER_BINARY, 1, 1000 + FRAGMENT_HEADER_BYTES));
  sameBytes(done.kind === 'binary' && done.bytes, patterned(size));
});

Roundtrip('chunks go into one buffer as they arrive; a message the budget has no room to reserve for is held till its end', () => {
  const budget = new ReassemblyBudget(5 * CHUNK);
  const r = new Reassembler({ maxMessageBytes: 5 * CHUNK, budget });
  const one = patterned(3 * CHUNK - 2);
  const two = patterned(3 * CHUNK - 7).reverse();
  const a = fragment(one, INNER_BINARY, 1, MAX);
  const b = fragment(two, INNER_BINARY, 2, MAX);
  assert.is(r.push(a[0]), null);
  assert.is(budget.reserved, 3 * CHUNK, 'the first message has its buffer');
  assert.is(r.push(b[0]), null);
  assert.is(r.push(b[1]), null);
  assert.is(budget.reserved, 3 * CHUNK, 'no room for a second one: its chunks are held');
  assert.is(budget.held, 3 * CHUNK);
  sameBytes((r.push(b[2]) as { bytes: Uint8Array }).bytes, two, 'held message');
  r.push(a[1]);
  sameBytes((r.push(a[2]) as { bytes: Uint8Array }).bytes, one, 'copied-in message');
  assert.equal([budget.held, budget.reserved, r.heldBytes], [0, 0, 0]);
});

Roundtrip('a message dropped halfway gives its reserved buffer back to the budget', () => {
  const budget = new ReassemblyBudget(MiB);
  const r = new Reassembler({ maxMessageBytes: MiB, budget });
  r.push(fragment(patterned(3 * CHUNK), INNER_BINARY, 8, MAX)[0]);
  assert.ok(budget.reserved > 0);
  r.clear();
  assert.equal([budget.held, budget.reserved], [0, 0]);
});

Roundtrip.run();

const Reject = suite('Reassembler rejections');

Reject('a truncated header or a non-fragment frame is invalid_request', () => {
  const r = newReassembler();
  throwsAppError(() => r.push(new Uint8Array(0)), 'invalid_request');
  throwsAppError(() => r.push(forge(1, 0, 2, 10).subarray(0, FRAGMENT_HEADER_BYTES - 1)), 'invalid_request');
  const wrongKind = forge(1, 0, 2, 10);
  wrongKind[0] = 0x02;
  throwsAppError(() => r.push(wrongKind), 'invalid_request');
});

Reject('count below 2, index at or past count, unknown inner kind and empty chunks are invalid_request', () => {
  const r = newReassembler();
  throwsAppError(() => r.push(forge(1, 0, 1, 10)), 'invalid_request');
  throwsAppError(() => r.push(forge(2, 0, 0, 10)), 'invalid_request');
  throwsAppError(() => r.push(forge(3, 2, 2, 10)), 'invalid_request');
  throwsAppError(() => r.push(forge(4, 0xffffffff, 3, 10)), 'invalid_request');
  throwsAppError(() => r.push(forge(5, 0, 2, 10, 7)), 'invalid_request');
  throwsAppError(() => r.push(forge(6, 0, 2, 0)), 'invalid_request');
  assert.is(r.pending, 0);
});

Reject('a count or inner kind that changes between fragments of one message is invalid_request', () => {
  const r = newReassembler();
  assert.is(r.push(forge(1, 0, 3, 10)), null);
  throwsAppError(() => r.push(forge(1, 1, 4, 10)), 'invalid_request', 'changed');
  assert.is(r.pending, 0);
  assert.is(r.push(forge(2, 0, 3, 10, INNER_BINARY)), null);
  throwsAppError(() => r.push(forge(2, 1, 3, 10, INNER_TEXT)), 'invalid_request', 'changed');
  assert.is(r.pending, 0);
});

Reject('a duplicate index is invalid_request and drops the message', () => {
  const r = newReassembler();
  assert.is(r.push(forge(1, 0, 3, 10)), null);
  throwsAppError(() => r.push(forge(1, 0, 3, 10)), 'invalid_request', 'duplicate');
  assert.is(r.pending, 0);
});

Reject('chunks of unequal length, or a last chunk longer than the others, are invalid_request', () => {
  const r = newReassembler();
  assert.is(r.push(forge(1, 0, 3, 10)), null);
  throwsAppError(() => r.push(forge(1, 1, 3, 11)), 'invalid_request');
  assert.is(r.push(forge(2, 0, 2, 10)), null);
  throwsAppError(() => r.push(forge(2, 1, 2, 11)), 'invalid_request');
  assert.is(r.push(forge(3, 2, 3, 10)), null);
  throwsAppError(() => r.push(forge(3, 0, 3, 9)), 'invalid_request');
  assert.is(r.pending, 0);
});

Reject('a forged count that proves the message too large is payload_too_large on its first fragment', () => {
  const r = newReassembler(64 * MiB);
  throwsAppError(() => r.push(forge(1, 0, 0xffffffff, 1)), 'payload_too_large');
  throwsAppError(() => r.push(forge(2, 0, 258, CHUNK)), 'payload_too_large');
  // Only the last chunk seen: the others are at least as long, so count * last already bounds the total.
  throwsAppError(() => r.push(forge(3, 99, 100, MiB)), 'payload_too_large');
  assert.is(r.pending, 0);
});

Reject('a message one byte over maxMessageBytes is payload_too_large before its bytes are held', () => {
  const size = 3 * 1000 + 1;
  const r = newReassembler(size - 1);
  const frames = fragment(patterned(size), INNER_BINARY, 1, 1000 + FRAGMENT_HEADER_BYTES);
  throwsAppError(() => r.push(frames[0]), 'payload_too_large');
  assert.is(r.pending, 0);
});

Reject('partial messages together holding more than maxMessageBytes is payload_too_large', () => {
  const r = newReassembler(1000);
  assert.is(r.push(forge(1, 0, 2, 400)), null);
  assert.is(r.push(forge(2, 0, 2, 400)), null);
  throwsAppError(() => r.push(forge(3, 0, 2, 400)), 'payload_too_large', 'Partial messages');
  assert.is(r.pending, 2);
});

Reject('more partial messages than maxPartialMessages is payload_too_large, existing ones still complete', () => {
  const r = new Reassembler({ maxMessageBytes: MiB, maxPartialMessages: 3 });
  for (let id = 1; id <= 3; id++) assert.is(r.push(forge(id, 0, 2, 10)), null);
  throwsAppError(() => r.push(forge(4, 0, 2, 10)), 'payload_too_large', 'partial messages');
  assert.is(r.pending, 3);
  const done = r.push(forge(2, 1, 2, 5));
  assert.ok(done && done.kind === 'binary' && done.bytes.length === 15);
  assert.is(r.push(forge(5, 0, 2, 10)), null);
});

Reject('reassembled text that is not UTF-8 is invalid_json and leaves nothing behind', () => {
  const r = newReassembler();
  assert.is(r.push(forge(1, 0, 2, new Uint8Array([0x61, 0xe6]), INNER_TEXT)), null);
  throwsAppError(() => r.push(forge(1, 1, 2, new Uint8Array([0x28]), INNER_TEXT)), 'invalid_json');
  assert.is(r.pending, 0);
  // A character split across chunks is fine: only the whole message must be UTF-8.
  assert.is(r.push(forge(2, 0, 2, new Uint8Array([0x61, 0xe6]), INNER_TEXT)), null);
  const done = r.push(forge(2, 1, 2, new Uint8Array([0x97, 0xa5]), INNER_TEXT));
  assert.equal(done, { kind: 'text', text: 'a日' });
});

Reject.run();

const Recovery = suite('Reassembler after errors');

Recovery('the rest of a rejected message is dropped quietly, one error per message', () => {
  const r = newReassembler(2 * CHUNK);
  const frames = fragment(patterned(5 * CHUNK), INNER_BINARY, 7, MAX);
  throwsAppError(() => r.push(frames[0]), 'payload_too_large');
  for (const frame of frames.slice(1)) assert.is(r.push(frame), null);
  assert.is(r.pending, 0);
  // Its last fragment cleared the rejection, so the id can carry a new message.
  const again = patterned(2 * CHUNK);
  const done = reassembleAll(r, fragment(again, INNER_BINARY, 7, MAX));
  sameBytes(done.kind === 'binary' && done.bytes, again);
});

Recovery('a good message completes after every kind of rejection', () => {
  const r = newReassembler(MiB);
  const bad = [
    new Uint8Array(3),
    forge(10, 0, 1, 10),
    forge(11, 5, 2, 10),
    forge(12, 0, 0xffffffff, 10),
    forge(13, 0, 2, 0),
  ];
  for (const frame of bad) assert.throws(() => r.push(frame));
  assert.is(r.push(forge(14, 0, 3, 10)), null);
  assert.throws(() => r.push(forge(14, 0, 3, 10)));
  const good = patterned(3 * CHUNK);
  const binary = reassembleAll(r, fragment(good, INNER_BINARY, 15, MAX));
  sameBytes(binary.kind === 'binary' && binary.bytes, good);
  const text = 'ok '.repeat(200_000);
  const done = reassembleAll(r, fragment(new TextEncoder().encode(text), INNER_TEXT, 16, MAX));
  assert.ok(done.kind === 'text' && done.text === text);
  assert.is(r.pending, 0);
});

Recovery('partial messages idle past partialTimeoutMs are dropped on the next push', async () => {
  const r = new Reassembler({ maxMessageBytes: 1000, partialTimeoutMs: 20 });
  assert.is(r.push(forge(1, 0, 2, 600)), null);
  await new Promise((resolve) => setTimeout(resolve, 40));
  // Held bytes were released too: this 600-byte chunk fits under the 1000-byte cap again.
  assert.is(r.push(forge(2, 0, 2, 600)), null);
  assert.is(r.pending, 1);
  // The expired message's last fragment starts a fresh partial rather than completing anything.
  assert.is(r.push(forge(1, 1, 2, 100)), null);
  assert.is(r.pending, 2);
});

Recovery.run();
