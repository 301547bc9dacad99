/**
 * Binary framing for a data channel. A string message is one whole JSON frame and never passes through here.
 * A binary message starts with its frame kind:
 *   FRAGMENT  [0x01][u32 messageId][u32 index][u32 count][u8 innerKind][chunk]   (big-endian)
 *   ENVELOPE  [0x02][u32 headerLength][header: UTF-8 JSON][payload]
 * Fragments carry a message too big for one data-channel message: innerKind says whether the reassembled
 * bytes are a UTF-8 text frame or an envelope. Every chunk but the last has the same length and the last is
 * no longer, which lets the receiver bound a message's size from its first fragment.
 */
import { AppError } from '../errors.ts';

export const FRAME_FRAGMENT = 0x01;
export const FRAME_ENVELOPE = 0x02;
export const FRAGMENT_HEADER_BYTES = 14;
export const ENVELOPE_PREFIX_BYTES = 5;
export const INNER_TEXT = 0;
export const INNER_BINARY = 1;
export type InnerKind = typeof INNER_TEXT | typeof INNER_BINARY;

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, so text survives a fragment round trip byte for byte.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Strict UTF-8 decoding; invalid bytes are `invalid_json`, naming `what` was being read. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new AppError('invalid_json', `${what} is not valid UTF-8`, { cause: error });
  }
}

/** The UTF-8 size of `s` as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes), without encoding. */
export function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: two code units, four bytes
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/** An envelope's prefix and header, `[0x02][u32 header length][header]`: the payload follows it. */
export function envelopeHead(headerJson: string): Uint8Array<ArrayBuffer> {
  const headerLength = utf8Length(headerJson);
  const head = new Uint8Array(ENVELOPE_PREFIX_BYTES + headerLength);
  head[0] = FRAME_ENVELOPE;
  viewOf(head).setUint32(1, headerLength);
  encoder.encodeInto(headerJson, head.subarray(ENVELOPE_PREFIX_BYTES));
  return head;
}

export function encodeEnvelope(headerJson: string, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const head = envelopeHead(headerJson);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** The payload is a view into `bytes`, not a copy. */
export function decodeEnvelope(bytes: Uint8Array): { header: string; payload: Uint8Array } {
  if (bytes.length < ENVELOPE_PREFIX_BYTES || bytes[0] !== FRAME_ENVELOPE) {
    throw new AppError('invalid_request', 'Malformed envelope frame: too short or wrong frame kind');
  }
  const headerEnd = ENVELOPE_PREFIX_BYTES + viewOf(bytes).getUint32(1);
  if (headerEnd > bytes.length) {
    throw new AppError('invalid_request', 'Malformed envelope frame: header length exceeds the frame');
  }
  return {
    header: decodeUtf8(bytes.subarray(ENVELOPE_PREFIX_BYTES, headerEnd), 'Envelope header'),
    payload: bytes.subarray(headerEnd),
  };
}

/** Splits a message that does not fit in one data-channel message into fragments of at most `maxMessageSize`. */
export function fragment(
  bytes: Uint8Array,
  innerKind: InnerKind,
  messageId: number,
  maxMessageSize: number,
): Uint8Array<ArrayBuffer>[] {
  return [...fragments([bytes], innerKind, messageId, maxMessageSize)];
}

/**
 * The fragments of the message that `parts` make in order (an envelope's head and its payload, say), each built
 * only when it is taken. A sender that waits on backpressure between fragments so never holds the message twice
 * over, and its first fragment leaves before the last is copied. `parts` are read as the fragments are taken: they
 * must not change meanwhile.
 */
export function fragments(
  parts: readonly Uint8Array[],
  innerKind: InnerKind,
  messageId: number,
  maxMessageSize: number,
): IterableIterator<Uint8Array<ArrayBuffer>> {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const chunkLength = maxMessageSize - FRAGMENT_HEADER_BYTES;
  const count = Math.ceil(total / chunkLength);
  if (!(chunkLength >= 1) || count < 2 || count > 0xffffffff) {
    throw new AppError('internal', `Cannot fragment ${total} bytes into frames of ${maxMessageSize} bytes`);
  }
  return fragmentsOf(parts, innerKind, messageId, chunkLength, count, total);
}

function* fragmentsOf(parts: readonly Uint8Array[], innerKind: InnerKind, messageId: number, chunkLength: number, count: number, total: number) {
  let part = 0;
  let offset = 0; // into parts[part]
  for (let index = 0; index < count; index++) {
    const frame = fragmentFrame(messageId, index, count, innerKind, Math.min(chunkLength, total - index * chunkLength));
    for (let at = FRAGMENT_HEADER_BYTES; at < frame.length; ) {
      const source = parts[part];
      const take = Math.min(source.length - offset, frame.length - at);
      frame.set(source.subarray(offset, offset + take), at);
      at += take;
      offset += take;
      if (offset === source.length) {
        part++;
        offset = 0;
      }
    }
    yield frame;
  }
}

/** One FRAGMENT frame; writes whatever header it is given (tests use it to forge bad ones). */
export function encodeFragment(
  messageId: number,
  index: number,
  count: number,
  innerKind: number,
  chunk: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const frame = fragmentFrame(messageId, index, count, innerKind, chunk.length);
  frame.set(chunk, FRAGMENT_HEADER_BYTES);
  return frame;
}

/** A FRAGMENT frame with its header written, room for `chunkLength` bytes after it. */
function fragmentFrame(messageId: number, index: number, count: number, innerKind: number, chunkLength: number): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(FRAGMENT_HEADER_BYTES + chunkLength);
  const view = viewOf(frame);
  frame[0] = FRAME_FRAGMENT;
  view.setUint32(1, messageId);
  view.setUint32(5, index);
  view.setUint32(9, count);
  frame[13] = innerKind;
  return frame;
}
