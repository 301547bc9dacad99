/**
 * One WebSocket as a tabagent link: the data channel's JSON frames, one caller (so `stop_generation` and
 * `halt_status` see this socket's requests only), every request cancelled when the socket closes.
 * A WebSocket carries a message of any size whole, so the data channel's FRAGMENT frames are not used here;
 * its binary ENVELOPE is (a request's attachment, an answer's binary part).
 */
import { Caller, type Dispatcher } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import { serveMessage, type Endpoint } from '../../inbound.ts';
import { log } from '../../log.ts';
import { decodeFrame } from '../../protocol/frames.ts';
import { decodeEnvelope, encodeEnvelope, FRAME_ENVELOPE, utf8Length } from '../../protocol/framing.ts';
import type { LinkStats } from '../../protocol/link.ts';
import type { Identity } from '../../protocol/handlers.ts';
import type { MessageRate } from '../../security/rate-limit.ts';

/** What a connection needs of the socket: crossws's `Peer` on every runtime. */
export interface SocketPeer {
  send(data: string | Uint8Array): unknown;
  close(code?: number, reason?: string): void;
}

export interface ConnectionOptions {
  /** Whom the socket's requests act as: the key it opened with. */
  identity: Identity;
  dispatcher: Dispatcher;
  /** Counters to add this socket's traffic to (the server-wide totals behind `get_stats`). */
  traffic: LinkStats;
  maxMessageBytes: number;
  maxInFlight: number;
  /** This socket's message budget: past it, `rate_limited` and the socket stays. */
  messageRate: MessageRate;
}

export class SocketConnection implements Endpoint {
  readonly caller: Caller;
  readonly messageRate: MessageRate;
  readonly notResumable = 'A WebSocket is not resumable: reconnect and send the requests again';
  readonly #options: ConnectionOptions;
  readonly #peer: SocketPeer;
  #closed = false;

  constructor(id: string, peer: SocketPeer, options: ConnectionOptions) {
    this.caller = new Caller(id, options.identity, options.maxInFlight);
    this.messageRate = options.messageRate;
    this.#peer = peer;
    this.#options = options;
  }

  /**
   * A message as the socket delivered it: text (a JSON frame), or bytes (an ENVELOPE: JSON header plus attachment;
   * a Buffer under Node, an ArrayBuffer under Deno). Never throws: a socket's event handler must not.
   */
  receive(data: unknown): void {
    const { traffic } = this.#options;
    serveMessage(this.#options.dispatcher, this, (assignId) => {
      const message = typeof data === 'string' ? data : bytesOf(data);
      const size = typeof message === 'string' ? utf8Length(message) : message.length;
      traffic.messagesIn++;
      traffic.bytesIn += size;
      this.#checkSize(size);
      if (typeof message === 'string') return { frame: decodeFrame(message, assignId) };
      const { header, payload } = decodeBinary(message);
      return { frame: decodeFrame(header, assignId), attachment: payload };
    });
  }

  /** Sends one frame (with its binary part as an ENVELOPE); nothing once the socket has closed. Never throws. */
  send(frame: object, attachment?: Uint8Array): void {
    if (this.#closed) return;
    const json = JSON.stringify(frame);
    const message = attachment ? encodeEnvelope(json, attachment) : json;
    try {
      this.#peer.send(message);
    } catch (error) {
      // A socket closing under us; its close event cancels what is left.
      return log.debug('WebSocket frame not delivered', { socket: this.caller.id, error });
    }
    this.#options.traffic.messagesOut++;
    this.#options.traffic.bytesOut += typeof message === 'string' ? utf8Length(message) : message.length;
  }

  /** The socket has closed: its requests are cancelled, and their answers go nowhere. */
  onSocketClosed(reason: string): void {
    this.#closed = true;
    this.caller.cancel(`WebSocket closed (${reason})`);
  }

  /** Closes the socket from this side; what was sent before goes out first. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#peer.close(code, reason);
  }

  /** The WebSocket layer reads at most a little over the cap (see endpoint.ts); this gives the typed answer. */
  #checkSize(size: number): void {
    const limit = this.#options.maxMessageBytes;
    if (size > limit) {
      throw new AppError('payload_too_large', `Message of ${size} bytes exceeds the limit of ${limit}`, { details: { limit } });
    }
  }
}

function bytesOf(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new AppError('invalid_request', `Unsupported WebSocket message type ${Object.prototype.toString.call(data)}`);
}

function decodeBinary(bytes: Uint8Array): { header: string; payload: Uint8Array } {
  if (bytes[0] === FRAME_ENVELOPE) return decodeEnvelope(bytes);
  throw new AppError(
    'invalid_request',
    `Binary messages on a WebSocket are ENVELOPE frames (first byte 0x02), not kind ${bytes.length ? bytes[0] : '(empty)'}: a WebSocket message needs no fragments`,
    { details: { field: 'frame_kind' } },
  );
}
