/**
 * One Chrome native messaging port, served in the server: the bytes a native host relays from Chrome's stdin come
 * in, Chrome's framing goes back out. Requests are data-channel frames or TabAgent's `{ route, request_id, payload }`
 * envelope, run through the one dispatcher; answers over 1 MiB (Chrome's limit toward the extension) go out as
 * fragment frames.
 */
import { Caller, type Dispatcher } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import { serveMessage, type Endpoint } from '../../inbound.ts';
import { log } from '../../log.ts';
import { decodeRequestObject, errorFrame } from '../../protocol/frames.ts';
import { decodeUtf8, utf8Length } from '../../protocol/framing.ts';
import type { LinkStats } from '../../protocol/link.ts';
import { ANONYMOUS_IDENTITY } from '../../security/auth.ts';
import type { MessageRate } from '../../security/rate-limit.ts';
import { decodeRouteEnvelope, routeEnvelopeAnswer, isRouteEnvelope } from './envelope.ts';
import { fragmentJson } from './fragments.ts';
import { encodeNativeMessage, LENGTH_PREFIX_BYTES, MAX_BROWSER_MESSAGE_BYTES, MAX_HOST_MESSAGE_BYTES, NativeMessageReader } from './framing.ts';

/** What a port needs of its connection: write bytes (`done` once they are handed on), and end it. */
export interface PortStream {
  write(bytes: Uint8Array, done: () => void): void;
  end(): void;
}

export interface PortOptions {
  dispatcher: Dispatcher;
  /** Counters to add this port's traffic to (the server-wide totals behind `get_stats`). */
  traffic: LinkStats;
  maxMessageBytes: number;
  maxInFlight: number;
  /** This port's message budget: past it, `rate_limited` and the port stays. */
  messageRate: MessageRate;
}

export class NativePort implements Endpoint {
  /**
   * The port acts as the anonymous owner, with admin rights: only the extensions in the host manifest's
   * `allowed_origins` can open one, and only the server's own user can reach its socket (see endpoint.ts).
   */
  readonly caller: Caller;
  readonly messageRate: MessageRate;
  /** The same port for TabAgent's `{ route, request_id, payload }` envelopes: answers in their shape, no chunks. */
  readonly #envelopes: Endpoint;
  readonly #stream: PortStream;
  readonly #options: PortOptions;
  readonly #reader: NativeMessageReader;
  #nextMessageId = 0;
  #written: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(id: string, stream: PortStream, options: PortOptions) {
    this.caller = new Caller(id, ANONYMOUS_IDENTITY, options.maxInFlight);
    this.messageRate = options.messageRate;
    const inEnvelope = (frame: object) => this.send(routeEnvelopeAnswer(frame as Record<string, unknown>));
    this.#envelopes = {
      caller: this.caller,
      messageRate: this.messageRate,
      send: inEnvelope,
      route: () => ({ deliver: ({ frame }) => inEnvelope(frame), origin: this }),
    };
    this.#stream = stream;
    this.#options = options;
    this.#reader = new NativeMessageReader(Math.min(options.maxMessageBytes, MAX_BROWSER_MESSAGE_BYTES));
  }

  /** Bytes from the host, as they come; whole messages are served. Never throws. */
  receive(chunk: Buffer): void {
    for (const input of this.#reader.push(chunk)) {
      if (input.kind === 'message') this.#serve(input.bytes);
      else this.send(errorFrame(input.error));
    }
  }

  /**
   * The host closed its side (Chrome closed the port): a message cut short gets its error, and the port's requests
   * are cancelled, as a closed data channel's are. The stream ends once their answers are out.
   */
  inputEnded(): void {
    const truncated = this.#reader.end();
    if (truncated) this.send(errorFrame(truncated));
    this.caller.cancel(new AppError('cancelled', 'The native messaging port closed'));
  }

  /**
   * Sends a frame; one longer than Chrome takes from a host goes as fragment frames. Nothing once closed. JSON only:
   * a binary part (echo returns the request's, which cannot come this way) is dropped.
   */
  send(frame: object, attachment?: Uint8Array): void {
    if (attachment) log.warn('binary attachment dropped: native messaging carries JSON only', { request_id: (frame as { request_id?: string }).request_id });
    if (this.#closed) return;
    const json = JSON.stringify(frame);
    if (json.length <= MAX_HOST_MESSAGE_BYTES / 3 || utf8Length(json) <= MAX_HOST_MESSAGE_BYTES) return this.#sendMessage(json);
    for (const fragment of fragmentJson(json, ++this.#nextMessageId, MAX_HOST_MESSAGE_BYTES)) this.#sendMessage(fragment);
  }

  /** Ends the stream once everything sent so far was handed on. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#written;
    this.#stream.end();
  }

  /** The connection is gone: nothing more goes out, and what runs is cancelled. */
  onClosed(): void {
    this.#closed = true;
    this.caller.cancel(new AppError('cancelled', 'The native messaging port closed'));
  }

  #serve(bytes: Uint8Array): void {
    const { dispatcher, traffic } = this.#options;
    traffic.messagesIn++;
    traffic.bytesIn += LENGTH_PREFIX_BYTES + bytes.length;
    const parsed = parseMessage(bytes);
    // Envelope requests answer in the envelope's shape, whole: their callers expect no chunk or event frames.
    const endpoint = isRouteEnvelope(parsed) ? this.#envelopes : this;
    serveMessage(dispatcher, endpoint, (assignId) => {
      if (parsed instanceof AppError) throw parsed;
      return { frame: isRouteEnvelope(parsed) ? decodeRouteEnvelope(parsed, assignId) : decodeRequestObject(parsed, assignId) };
    });
  }

  #sendMessage(json: string): void {
    const bytes = encodeNativeMessage(json);
    this.#options.traffic.messagesOut++;
    this.#options.traffic.bytesOut += bytes.length;
    this.#written = new Promise((resolve) => this.#stream.write(bytes, resolve));
  }
}

/** A message's JSON value, or the `invalid_json` error that answers it. */
function parseMessage(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decodeUtf8(bytes, 'Message'));
  } catch (cause) {
    return cause instanceof AppError ? cause : new AppError('invalid_json', `Message is not valid JSON: ${(cause as Error).message}`);
  }
}
