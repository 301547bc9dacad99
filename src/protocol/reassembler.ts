/**
 * Reassembly of FRAGMENT frames (framing.ts) into the messages they carry, bounded in bytes, in partial messages
 * and in time, so that nothing a peer sends can make a receiver hold more than its budget.
 */
import { AppError } from '../errors.ts';
import { FRAGMENT_HEADER_BYTES, FRAME_FRAGMENT, INNER_BINARY, INNER_TEXT, decodeUtf8, viewOf, type InnerKind } from './framing.ts';

export type Reassembled = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

/**
 * The bytes that partial messages may hold, shared by the reassemblers given it. A session's channels share one:
 * each channel has its own reassembler and a client may open as many channels as SCTP allows, so a bound per
 * reassembler alone let one session hold that many times maxMessageBytes in messages it never finished.
 */
export class ReassemblyBudget {
  /** Bytes of fragments received for messages not yet complete. */
  held = 0;
  /** Bytes of the buffers allocated for such messages to be copied into as they arrive: at most maxBytes too. */
  reserved = 0;
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
  /** Each chunk received, by index; null once copied into `into`. */
  chunks: Map<number, Uint8Array | null>;
  /**
   * The whole message's buffer, once the chunk length is known and the budget has room for it: chunks are copied
   * in as they arrive, so the message is whole when its last one does (no copy of it all at the end, when the
   * receiver waits for it). Without room, chunks are held as they came and copied together at the end.
   */
  into?: Uint8Array;
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
    if (partial.chunkLength !== 0) this.#copyIn(partial);
    partial.bytes += chunk.length;
    partial.touchedAt = now;
    this.#heldBytes += chunk.length;
    budget.held += chunk.length;
    if (partial.chunks.size < count) return null;
    this.#drop(id);
    return partial;
  }

  /** Copies what `partial` holds into its buffer, allocating that first when the budget allows. */
  #copyIn(partial: Partial): void {
    if (!partial.into) {
      // The message is no longer than the cap (else its last chunk is refused), nor than count whole chunks.
      const size = Math.min(partial.count * partial.chunkLength, this.#maxMessageBytes);
      if (this.#budget.reserved + size > this.#budget.maxBytes) return;
      this.#budget.reserved += size;
      partial.into = new Uint8Array(size);
    }
    for (const [index, chunk] of partial.chunks) {
      if (chunk === null) continue;
      partial.into.set(chunk, index * partial.chunkLength);
      partial.chunks.set(index, null);
    }
  }

  #assemble(partial: Partial): Reassembled {
    let out: Uint8Array;
    if (partial.into) {
      this.#budget.reserved -= partial.into.length;
      out = partial.into.subarray(0, partial.bytes);
    } else {
      out = new Uint8Array(partial.bytes);
      for (let index = 0; index < partial.count; index++) {
        out.set(partial.chunks.get(index)!, index * partial.chunkLength);
      }
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
    // A complete message keeps its buffer until #assemble hands it over; a dropped one gives it back now.
    if (partial.into && partial.chunks.size < partial.count) this.#budget.reserved -= partial.into.length;
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
