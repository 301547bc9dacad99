/**
 * One data channel as an ordered message link: text frames and binary envelopes of any size (fragmented to
 * fit the peer's max message size), sent in call order with backpressure, received and reassembled.
 */
import { AppError, toAppError } from '../errors.ts';
import {
  ENVELOPE_PREFIX_BYTES,
  FRAGMENT_HEADER_BYTES,
  FRAME_ENVELOPE,
  FRAME_FRAGMENT,
  INNER_BINARY,
  INNER_TEXT,
  decodeEnvelope,
  encodeEnvelope,
  envelopeHead,
  fragments,
  utf8Length,
  type InnerKind,
} from './framing.ts';
import { Reassembler, type ReassemblyBudget } from './reassembler.ts';

/** The part of a W3C RTCDataChannel the link uses. Handlers are properties: @roamhq/wrtc dispatches to them reliably. */
export interface DataChannelLike {
  readonly label: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  binaryType: string;
  send(data: string | ArrayBufferView<ArrayBuffer> | ArrayBuffer): void;
  close(): void;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: Event) => void) | null;
  /** W3C's, where the channel has them (browsers, the peer process's channels; not wrtc): sending then waits for the event, not a poll. */
  bufferedAmountLowThreshold?: number;
  onbufferedamountlow?: ((event: Event) => void) | null;
}

export type Inbound = { kind: 'text'; text: string } | { kind: 'binary'; header: string; payload: Uint8Array };

export interface LinkOptions {
  /** The peer's max message size (pc.sctp.maxMessageSize; Chrome and wrtc report 262144). */
  maxMessageSize: number;
  /** Largest message accepted from the peer after reassembly; default 64 MiB. */
  maxMessageBytes?: number;
  /** What the peer's unfinished messages may hold, shared with other links (a session's); by default maxMessageBytes of its own. */
  reassemblyBudget?: ReassemblyBudget;
  /** Sending pauses while bufferedAmount is above this; default 1 MiB. */
  highWaterMark?: number;
  /**
   * and resumes once it is at or below this; default 768 KiB: what is left then covers a poll interval and more at
   * loopback speed (130 MB/s is 260 KiB in 2 ms), so the channel does not run dry while the link waits.
   */
  lowWaterMark?: number;
  /**
   * How often to look at bufferedAmount while paused, on a channel without `bufferedamountlow` (wrtc's); default
   * 2 ms. A channel with the event is looked at when it fires, and every EVENT_FALLBACK_MS in case it does not.
   */
  pollIntervalMs?: number;
  onMessage(message: Inbound): void;
  /** A bad frame from the peer, or an error thrown by onMessage; the link keeps working. */
  onProtocolError(error: AppError): void;
  onClose?(): void;
  /** Counters to add this link's traffic to (e.g. a server-wide total); a fresh set by default. */
  stats?: LinkStats;
}

export interface LinkStats {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Frames never exceed this, whatever the peer allows: Firefox advertises about 1 GiB, and libwebrtc drops or
 * closes once 16 MiB is queued, so a huge single frame would defeat backpressure.
 */
const MAX_FRAME_BYTES = 256 * 1024;
/** Chrome's max message size: what to assume of a peer that states none (`pc.sctp` missing). */
export const DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024;
/**
 * The label of the channel the server opens with each offer: its requests belong to the session and are kept for a
 * resume; a client may open channels of its own beside it.
 */
export const SERVER_CHANNEL_LABEL = 'tabagent';
/** While a paused link waits for `bufferedamountlow`, it also looks for itself this often, in case the event never comes. */
const EVENT_FALLBACK_MS = 50;
/** A paused link that has seen its channel open reads `readyState` only every this many polls (see #writable). */
const STATE_EVERY_POLLS = 25;
const RESOLVED = Promise.resolve();
const encoder = new TextEncoder();
const noop = () => {};

const closedError = () => new AppError('cancelled', 'data channel closed');

export class ChannelLink {
  readonly channel: DataChannelLike;
  readonly stats: LinkStats;
  readonly #options: LinkOptions;
  readonly #frameBytes: number;
  readonly #high: number;
  readonly #low: number;
  readonly #pollMs: number;
  readonly #reassembler: Reassembler;
  readonly #maxMessageBytes: number;
  #tail: Promise<void> = RESOLVED;
  #queued = 0; // messages accepted but not yet fully handed to the channel
  #nextMessageId = 0;
  #closed = false;
  /**
   * wrtc answers `bufferedAmount` with a synchronous call into its network thread (~60 µs, a third of the send
   * itself), so the hot path does not read it per message: `#budget` is what may still be handed over without
   * passing the high water mark, counted down per send and re-read only when spent. The buffer only drains
   * between reads, so the bound holds. `readyState` costs as much, so it is read only until it reads 'open', not
   * per send: a channel this side closes is marked closed by `close()` first, one the remote side closed throws
   * InvalidStateError from `send()` (taken as closed), and `onclose` marks it in any case. What no check here can
   * prevent: wrtc clears its native channel on its signaling thread when the remote side closes, unsynchronized
   * with `send()` on this thread, so a send racing a remote close can segfault inside wrtc (node-webrtc's
   * RTCDataChannel::Send reads the pointer twice); reading `readyState` first never closed that gap.
   */
  #budget = -1;
  /** `readyState` has read 'open': the channel is not waited for any more, only drained (see #writable). */
  #opened = false;
  /** Whether the channel fires `bufferedamountlow`, and what a paused link runs when it does. */
  readonly #lowEvents: boolean;
  #wake: (() => void) | undefined;

  constructor(channel: DataChannelLike, options: LinkOptions) {
    this.channel = channel;
    this.stats = options.stats ?? { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
    this.#options = options;
    this.#frameBytes = Math.min(options.maxMessageSize, MAX_FRAME_BYTES);
    this.#high = options.highWaterMark ?? 1024 * 1024;
    this.#low = options.lowWaterMark ?? 768 * 1024;
    this.#pollMs = options.pollIntervalMs ?? 2;
    if (!(this.#frameBytes > FRAGMENT_HEADER_BYTES) || this.#low > this.#high) {
      throw new AppError('internal', 'Invalid link options: maxMessageSize too small or lowWaterMark above highWaterMark');
    }
    this.#maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    this.#reassembler = new Reassembler({ maxMessageBytes: this.#maxMessageBytes, budget: options.reassemblyBudget });

    channel.binaryType = 'arraybuffer';
    this.#lowEvents = typeof channel.bufferedAmountLowThreshold === 'number';
    if (this.#lowEvents) {
      channel.bufferedAmountLowThreshold = this.#low;
      channel.onbufferedamountlow = () => this.#wake?.();
    }
    channel.onmessage = (event) => this.#receive(event.data);
    channel.onclose = () => {
      this.#closed = true;
      this.#reassembler.clear(); // a shared budget must not stay spent on messages that can never finish
      options.onClose?.();
    };
  }

  /** What the peer's unfinished fragmented messages hold here; the reassembler bounds both. */
  get partial(): { messages: number; bytes: number } {
    return { messages: this.#reassembler.pending, bytes: this.#reassembler.heldBytes };
  }

  get isOpen(): boolean {
    return !this.#closed && this.channel.readyState === 'open';
  }

  /** Sends one text frame; its UTF-8 bytes go as fragments when they exceed one data-channel message. */
  sendText(text: string): Promise<void> {
    const limit = this.#frameBytes;
    if (text.length * 3 <= limit || (text.length <= limit && utf8Length(text) <= limit)) {
      return this.#queued === 0 && this.#ready() ? this.#sendNow(text) : this.#enqueue([text]);
    }
    return this.#enqueue(this.#fragments([encoder.encode(text)], INNER_TEXT));
  }

  /**
   * Sends a JSON header with a binary payload as one envelope, fragmented when it exceeds one data-channel message.
   * A fragmented payload is read as its fragments go out, not copied first: leave it unchanged until this settles.
   */
  sendBinary(headerJson: string, payload: Uint8Array): Promise<void> {
    if (payload.length + ENVELOPE_PREFIX_BYTES + headerJson.length * 3 > this.#frameBytes) {
      const head = envelopeHead(headerJson);
      if (head.length + payload.length > this.#frameBytes) return this.#enqueue(this.#fragments([head, payload], INNER_BINARY));
    }
    const envelope = encodeEnvelope(headerJson, payload);
    return this.#queued === 0 && this.#ready() ? this.#sendNow(envelope) : this.#enqueue([envelope]);
  }

  /**
   * Resolves once every message sent so far has left the channel's send buffer (bufferedAmount 0), the channel
   * has closed, or `timeoutMs` has passed. Never rejects. Left the buffer is not delivered: under wrtc the SCTP
   * stack still holds the tail (about 30 ms on loopback), and closing the channel then drops it at the peer.
   */
  flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let handedOver = false;
    this.#tail.then(() => (handedOver = true));
    return new Promise<void>((resolve) => {
      const check = () => {
        if (!this.isOpen || Date.now() >= deadline || (handedOver && this.channel.bufferedAmount === 0)) resolve();
        else setTimeout(check, this.#pollMs);
      };
      check();
    });
  }

  close(): void {
    this.#closed = true;
    this.channel.close();
  }

  #fragments(parts: Uint8Array[], innerKind: InnerKind): Iterable<Uint8Array<ArrayBuffer>> {
    const id = this.#nextMessageId;
    this.#nextMessageId = (id + 1) >>> 0;
    return fragments(parts, innerKind, id, this.#frameBytes);
  }

  #ready(): boolean {
    if (this.#closed) return false;
    if (this.#budget >= 0) return true;
    if (!this.#opened && !(this.#opened = this.channel.readyState === 'open')) return false;
    this.#budget = this.#high - this.channel.bufferedAmount;
    return this.#budget >= 0;
  }

  #sendNow(frame: string | Uint8Array<ArrayBuffer>): Promise<void> {
    try {
      this.#write(frame);
    } catch (error) {
      return Promise.reject(error);
    }
    this.stats.messagesOut++;
    return RESOLVED;
  }

  #enqueue(frames: Iterable<string | Uint8Array<ArrayBuffer>>): Promise<void> {
    this.#queued++;
    const run = this.#tail.then(() => this.#writeAll(frames));
    this.#tail = run.then(noop, noop);
    return run;
  }

  async #writeAll(frames: Iterable<string | Uint8Array<ArrayBuffer>>): Promise<void> {
    try {
      for (const frame of frames) {
        if (!this.#ready()) await this.#writable();
        this.#write(frame);
      }
      this.stats.messagesOut++;
    } finally {
      this.#queued--;
    }
  }

  #write(frame: string | Uint8Array<ArrayBuffer>): void {
    try {
      this.channel.send(frame);
    } catch (error) {
      // libwebrtc throws InvalidStateError once the transport is gone, even while readyState still reads 'open'.
      if (error instanceof Error && error.name === 'InvalidStateError') {
        this.#closed = true;
        throw new AppError('cancelled', 'data channel closed', { cause: error });
      }
      throw toAppError(error);
    }
    const size = typeof frame === 'string' ? utf8Length(frame) : frame.length;
    this.#budget -= size;
    this.stats.bytesOut += size;
  }

  /** Called when not #ready(): resolves once the channel is open and drained to the low water mark. */
  #writable(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let polls = 0;
      const check = () => {
        if (this.#closed) return reject(closedError());
        // Once open, a close shows as onclose or as a send throwing; readyState (as costly as bufferedAmount under
        // wrtc) is read now and then only, for a close that has shown neither yet.
        if (!this.#opened || ++polls % STATE_EVERY_POLLS === 0) {
          const state = this.channel.readyState;
          if (state !== 'open' && state !== 'connecting') return reject(closedError());
          this.#opened = state === 'open';
        }
        if (this.#opened && this.channel.bufferedAmount <= this.#low) {
          this.#budget = -1; // re-read on the next send
          return resolve();
        }
        this.#waitThen(check);
      };
      check();
    });
  }

  /** Runs `check` once the channel's buffer may have drained: at its `bufferedamountlow` event, else after a poll interval. */
  #waitThen(check: () => void): void {
    if (!this.#lowEvents || !this.#opened) {
      setTimeout(check, this.#pollMs);
      return;
    }
    const timer = setTimeout(() => wake(), EVENT_FALLBACK_MS);
    const wake = () => {
      clearTimeout(timer);
      this.#wake = undefined;
      check();
    };
    this.#wake = wake;
  }

  #receive(data: unknown): void {
    let message: Inbound | null;
    try {
      message = this.#decode(data);
    } catch (error) {
      this.#report(error);
      return;
    }
    if (!message) return;
    this.stats.messagesIn++;
    try {
      this.#options.onMessage(message);
    } catch (error) {
      this.#report(error);
    }
  }

  // A throw escaping a wrtc event handler is an uncaught exception that takes the whole process down.
  #report(error: unknown): void {
    try {
      this.#options.onProtocolError(toAppError(error));
    } catch (secondary) {
      console.error('ChannelLink: onProtocolError threw', secondary);
    }
  }

  /** The cap holds for whole messages too, not only for reassembled ones. */
  #checkSize(size: number): void {
    if (size > this.#maxMessageBytes) {
      throw new AppError('payload_too_large', `Message of ${size} bytes exceeds the limit of ${this.#maxMessageBytes}`, {
        details: { limit: this.#maxMessageBytes },
      });
    }
  }

  #decode(data: unknown): Inbound | null {
    if (typeof data === 'string') {
      const size = utf8Length(data);
      this.stats.bytesIn += size;
      this.#checkSize(size);
      return { kind: 'text', text: data };
    }
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else throw new AppError('invalid_request', 'Unsupported data channel message type');
    this.stats.bytesIn += bytes.length;

    if (bytes[0] === FRAME_ENVELOPE) {
      this.#checkSize(bytes.length);
      return envelopeMessage(bytes);
    }
    if (bytes[0] !== FRAME_FRAGMENT) {
      throw new AppError('invalid_request', `Unknown binary frame kind ${bytes.length ? bytes[0] : '(empty)'}`);
    }
    const done = this.#reassembler.push(bytes);
    if (!done) return null;
    return done.kind === 'text' ? done : envelopeMessage(done.bytes);
  }
}

function envelopeMessage(bytes: Uint8Array): Inbound {
  const { header, payload } = decodeEnvelope(bytes);
  return { kind: 'binary', header, payload };
}
