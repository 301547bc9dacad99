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

export type Reassembled = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, so text survives a fragment round trip byte for byte.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function viewOf(bytes: Uint8Array): DataView {
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

export function encodeEnvelope(headerJson: string, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const headerLength = utf8Length(headerJson);
  const out = new Uint8Array(ENVELOPE_PREFIX_BYTES + headerLength + payload.length);
  out[0] = FRAME_ENVELOPE;
  viewOf(out).setUint32(1, headerLength);
  encoder.encodeInto(headerJson, out.subarray(ENVELOPE_PREFIX_BYTES, ENVELOPE_PREFIX_BYTES + headerLength));
  out.set(payload, ENVELOPE_PREFIX_BYTES + headerLength);
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
  const chunkLength = maxMessageSize - FRAGMENT_HEADER_BYTES;
  const count = Math.ceil(bytes.length / chunkLength);
  if (!(chunkLength >= 1) || count < 2 || count > 0xffffffff) {
    throw new AppError('internal', `Cannot fragment ${bytes.length} bytes into frames of ${maxMessageSize} bytes`);
  }
  const fragments: Uint8Array<ArrayBuffer>[] = [];
  for (let index = 0; index < count; index++) {
    const chunk = bytes.subarray(index * chunkLength, (index + 1) * chunkLength);
    fragments.push(encodeFragment(messageId, index, count, innerKind, chunk));
  }
  return fragments;
}

/** One FRAGMENT frame; writes whatever header it is given (tests use it to forge bad ones). */
export function encodeFragment(
  messageId: number,
  index: number,
  count: number,
  innerKind: number,
  chunk: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(FRAGMENT_HEADER_BYTES + chunk.length);
  const view = viewOf(frame);
  frame[0] = FRAME_FRAGMENT;
  view.setUint32(1, messageId);
  view.setUint32(5, index);
  view.setUint32(9, count);
  frame[13] = innerKind;
  frame.set(chunk, FRAGMENT_HEADER_BYTES);
  return frame;
}

/**
 * The bytes that partial messages may hold, shared by the reassemblers given it. A session's channels share one:
 * each channel has its own reassembler and a client may open as many channels as SCTP allows, so a bound per
 * reassembler alone let one session hold that many times maxMessageBytes in messages it never finished.
 */
export class ReassemblyBudget {
  held = 0;
  constructor(readonly maxBytes: number) {}
}

export interface ReassemblerOptions {
  /** Largest reassembled message, and (without `budget`) the most bytes held across all partial messages at once. */
  maxMessageBytes: number;
  /** Shared with other reassemblers; by default one of maxMessageBytes of its own. */
  budget?: ReassemblyBudget;
  maxPartialMessages?: number;
  /** A partial message that receives no fragment for this long is dropped. */
  partialTimeoutMs?: number;
}

interface Partial {
  count: number;
  innerKind: InnerKind;
  chunks: Map<number, Uint8Array>;
  chunkLength: number; // of every chunk but the last; 0 until one arrives
  lastLength: number; // 0 until the last chunk arrives
  bytes: number;
  touchedAt: number;
}

export class Reassembler {
  readonly #maxMessageBytes: number;
  readonly #maxPartials: number;
  readonly #timeoutMs: number;
  readonly #partials = new Map<number, Partial>();
  // Ids rejected mid-message: their remaining fragments are dropped quietly, so one bad message is one error.
  readonly #rejected = new Map<number, number>();
  readonly #budget: ReassemblyBudget;
  #heldBytes = 0;

  constructor({ maxMessageBytes, budget, maxPartialMessages = 16, partialTimeoutMs = 30_000 }: ReassemblerOptions) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#budget = budget ?? new ReassemblyBudget(maxMessageBytes);
    this.#maxPartials = maxPartialMessages;
    this.#timeoutMs = partialTimeoutMs;
  }

  /** Number of messages waiting for more fragments. */
  get pending(): number {
    return this.#partials.size;
  }

  /** Bytes those messages hold: never above the budget. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Forgets every partial message (its channel closed), giving their bytes back to the budget. */
  clear(): void {
    for (const id of [...this.#partials.keys()]) this.#drop(id);
    this.#rejected.clear();
  }

  /**
   * Takes one fragment frame; returns the message it completes, or null. Keeps a view of `frame` until then,
   * so the caller must not reuse its memory. Throws AppError for a bad fragment and forgets that message.
   */
  push(frame: Uint8Array): Reassembled | null {
    const now = Date.now();
    this.#expire(now);
    if (frame.length < FRAGMENT_HEADER_BYTES || frame[0] !== FRAME_FRAGMENT) {
      throw new AppError('invalid_request', 'Malformed fragment frame: truncated header or wrong frame kind');
    }
    const view = viewOf(frame);
    const id = view.getUint32(1);
    const index = view.getUint32(5);
    const count = view.getUint32(9);
    if (this.#rejected.has(id)) {
      if (index === count - 1) this.#rejected.delete(id);
      else this.#rejected.set(id, now);
      return null;
    }
    let done: Partial | null;
    try {
      done = this.#accept(id, index, count, frame[13], frame.subarray(FRAGMENT_HEADER_BYTES), now);
    } catch (error) {
      this.#drop(id);
      if (index !== count - 1) this.#reject(id, now);
      throw error;
    }
    return done && this.#assemble(done);
  }

  #accept(id: number, index: number, count: number, innerKind: number, chunk: Uint8Array, now: number): Partial | null {
    if (count < 2 || index >= count) {
      throw new AppError('invalid_request', `Malformed fragment: index ${index} of count ${count}`);
    }
    if (innerKind !== INNER_TEXT && innerKind !== INNER_BINARY) {
      throw new AppError('invalid_request', `Malformed fragment: unknown inner kind ${innerKind}`);
    }
    if (chunk.length === 0) throw new AppError('invalid_request', 'Malformed fragment: empty chunk');
    let partial = this.#partials.get(id);
    if (!partial) {
      if (this.#partials.size >= this.#maxPartials) {
        throw new AppError('payload_too_large', `Too many partial messages: at most ${this.#maxPartials} at once`);
      }
      partial = { count, innerKind, chunks: new Map(), chunkLength: 0, lastLength: 0, bytes: 0, touchedAt: now };
      this.#partials.set(id, partial);
    } else if (partial.count !== count || partial.innerKind !== innerKind) {
      throw new AppError('invalid_request', `Malformed fragment: message ${id} changed its count or inner kind`);
    } else if (partial.chunks.has(index)) {
      throw new AppError('invalid_request', `Malformed fragment: duplicate index ${index} of message ${id}`);
    }

    if (index === count - 1) partial.lastLength = chunk.length;
    else if (partial.chunkLength === 0) partial.chunkLength = chunk.length;
    else if (chunk.length !== partial.chunkLength) {
      throw new AppError('invalid_request', `Malformed fragment: chunks of message ${id} differ in length`);
    }
    if (partial.chunkLength !== 0 && partial.lastLength > partial.chunkLength) {
      throw new AppError('invalid_request', `Malformed fragment: last chunk of message ${id} is the longest`);
    }
    // Sound by the equal-chunks rule: the unseen chunks are at least as long as the last one.
    const minTotal = partial.chunkLength
      ? (count - 1) * partial.chunkLength + Math.max(partial.lastLength, 1)
      : count * partial.lastLength;
    if (minTotal > this.#maxMessageBytes) {
      throw new AppError('payload_too_large', `Message of at least ${minTotal} bytes exceeds the limit of ${this.#maxMessageBytes}`, {
        details: { limit: this.#maxMessageBytes },
      });
    }
    const budget = this.#budget;
    if (budget.held + chunk.length > budget.maxBytes) {
      throw new AppError('payload_too_large', `Partial messages exceed the limit of ${budget.maxBytes} bytes`, {
        details: { limit: budget.maxBytes },
      });
    }

    partial.chunks.set(index, chunk);
    partial.bytes += chunk.length;
    partial.touchedAt = now;
    this.#heldBytes += chunk.length;
    budget.held += chunk.length;
    if (partial.chunks.size < count) return null;
    this.#drop(id);
    return partial;
  }

  #assemble(partial: Partial): Reassembled {
    const out = new Uint8Array(partial.bytes);
    for (let index = 0; index < partial.count; index++) {
      out.set(partial.chunks.get(index)!, index * partial.chunkLength);
    }
    return partial.innerKind === INNER_TEXT
      ? { kind: 'text', text: decodeUtf8(out, 'Text message') }
      : { kind: 'binary', bytes: out };
  }

  #drop(id: number): void {
    const partial = this.#partials.get(id);
    if (!partial) return;
    this.#heldBytes -= partial.bytes;
    this.#budget.held -= partial.bytes;
    this.#partials.delete(id);
  }

  #reject(id: number, now: number): void {
    this.#rejected.set(id, now);
    if (this.#rejected.size > this.#maxPartials) this.#rejected.delete(this.#rejected.keys().next().value!);
  }

  #expire(now: number): void {
    for (const [id, partial] of this.#partials) {
      if (now - partial.touchedAt > this.#timeoutMs) this.#drop(id);
    }
    for (const [id, at] of this.#rejected) {
      if (now - at > this.#timeoutMs) this.#rejected.delete(id);
    }
  }
}
