/**
 * A small client for `/v1/ws`: requests correlated by `request_id`, their chunks and events, binary attachments
 * as ENVELOPE frames. It runs wherever crossws's WebSocket does: the runtime's own, or ws in Node 20 (which has
 * no global WebSocket).
 */
import WebSocket from 'crossws/websocket';
import { AppError } from '../../errors.ts';
import { decodeEnvelope, encodeEnvelope } from '../../protocol/framing.ts';
import { subprotocols } from './subprotocol.ts';

export type Frame = Record<string, unknown>;

export interface Answer {
  /** The final answer: the type's response, or `{ type: 'error', code, message }`. */
  frame: Frame;
  attachment?: Uint8Array;
}

export interface RequestOptions {
  /** Sent with the request as an ENVELOPE; the handler sees it as its attachment. */
  attachment?: Uint8Array;
  /** The request's `chunk` and `event` frames, as they come. */
  onFrame?(frame: Frame): void;
}

interface Pending {
  resolve(answer: Answer): void;
  reject(error: AppError): void;
  onFrame?(frame: Frame): void;
}

export class WebSocketClient {
  /** Frames for no pending request: errors without a `request_id`, `shutting_down` events. */
  onUnsolicited: (frame: Frame) => void = () => {};
  /** Settles once the socket has closed, with its close code. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #socket: WebSocket;
  readonly #pending = new Map<string, Pending>();
  #nextId = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onmessage = ({ data }) => this.#receive(data);
    this.closed = new Promise((resolve) => {
      socket.addEventListener('close', ({ code, reason }) => {
        const error = new AppError('interrupted', `WebSocket closed (${code}${reason ? `: ${reason}` : ''})`);
        for (const pending of this.#pending.values()) pending.reject(error);
        this.#pending.clear();
        resolve({ code, reason });
      });
    });
  }

  /**
   * Opens `ws://host:port/v1/ws`, with the API key (when the server requires one) offered as a subprotocol, as a
   * browser must; rejects when the server refuses the upgrade (e.g. 403 for an origin, 401 for the key).
   */
  static connect(url: string | URL, options: { apiKey?: string } = {}): Promise<WebSocketClient> {
    const socket = new WebSocket(url, subprotocols(options.apiKey));
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(new WebSocketClient(socket));
      socket.onerror = (event) => reject(new Error(`WebSocket to ${url} failed: ${(event as ErrorEvent).message ?? 'error'}`));
    }).finally(() => {
      socket.onopen = null;
      socket.onerror = null;
    }) as Promise<WebSocketClient>;
  }

  /** Sends one request (its `request_id` is made when missing); resolves with its final answer, error answers included. */
  request(frame: Frame, options: RequestOptions = {}): Promise<Answer> {
    const requestId = String(frame.request_id ?? `c-${++this.#nextId}`);
    const json = JSON.stringify({ ...frame, request_id: requestId });
    return new Promise((resolve, reject) => {
      if (this.#socket.readyState !== WebSocket.OPEN) return reject(new AppError('not_connected', 'WebSocket is not open'));
      this.#pending.set(requestId, { resolve, reject, onFrame: options.onFrame });
      this.#socket.send(options.attachment ? encodeEnvelope(json, options.attachment) : json);
    });
  }

  /** Sends a message as it is: for what `request` would not send (bad JSON, forged frames). */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.#socket.send(data);
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    this.#socket.close(code);
    return this.closed;
  }

  #receive(data: unknown): void {
    let frame: Frame;
    let attachment: Uint8Array | undefined;
    if (typeof data === 'string') frame = JSON.parse(data);
    else {
      const { header, payload } = decodeEnvelope(new Uint8Array(data as ArrayBuffer));
      frame = JSON.parse(header);
      attachment = payload;
    }
    const pending = typeof frame.request_id === 'string' ? this.#pending.get(frame.request_id) : undefined;
    if (!pending) return this.onUnsolicited(frame);
    if (frame.type === 'chunk' || frame.type === 'event') return pending.onFrame?.(frame);
    this.#pending.delete(frame.request_id as string);
    pending.resolve({ frame, attachment });
  }
}
