import { AppError, isErrorCode } from '../errors.ts';
import type { EventData, EventName } from '../protocol/events.ts';
import { ChannelLink, DEFAULT_MAX_MESSAGE_SIZE, type Inbound } from '../protocol/link.ts';
import type { Action, RequestInput, ResponseOf, StreamingAction } from '../registry.ts';
import { ChunkQueue } from './stream.ts';

/** A `chunk` frame of a streaming request. */
export interface Chunk {
  request_id: string;
  type: 'chunk';
  delta: string;
  [field: string]: unknown;
}

export interface CallOptions {
  /** Your own correlation id; one is made up otherwise. */
  requestId?: string;
  /** Aborting it sends `stop_generation` for this request; the call then rejects with `cancelled`. */
  signal?: AbortSignal;
  /** Binary payload sent with the request (as a binary envelope). */
  attachment?: Uint8Array;
}

/** Parameters are optional for types whose input is. */
type ParamsArgs<A extends Action> = undefined extends RequestInput<A>
  ? [params?: RequestInput<A>, options?: CallOptions]
  : [params: RequestInput<A>, options?: CallOptions];

export interface Streamed<A extends Action> extends AsyncIterableIterator<Chunk> {
  readonly requestId: string;
  /** The final answer, after the last chunk. */
  readonly result: Promise<ResponseOf<A>>;
}

interface Pending {
  resolve(answer: { frame: Record<string, unknown>; attachment?: Uint8Array }): void;
  reject(error: AppError): void;
  onChunk?(chunk: Chunk): void;
}

type Listener = (data: unknown, frame: Record<string, unknown>) => void;

/**
 * Requests over one data channel: correlation by request_id, streaming, server events, cancellation, binary.
 * Made by `connect()`; works wherever there is an RTCDataChannel (browser page, offscreen document, Node + wrtc).
 */
export class RequestChannel {
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly link: ChannelLink;
  private readonly idPrefix = Math.random().toString(36).slice(2, 8);
  private nextId = 0;
  private closedWith: AppError | undefined;

  constructor(channel: RTCDataChannel, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE) {
    this.link = new ChannelLink(channel, {
      maxMessageSize,
      onMessage: (message) => this.receive(message),
      onProtocolError: (error) => this.emit('protocol_error', error.toJSON(), { type: 'error', ...error.toJSON() }),
      onClose: () => this.fail(new AppError('cancelled', 'Data channel closed')),
    });
  }

  /** Sends a request; resolves with the final answer and any binary attachment, rejects with its typed error. */
  call<A extends Action>(
    action: A,
    params: RequestInput<A> | undefined,
    options: CallOptions = {},
    onChunk?: (chunk: Chunk) => void,
  ): Promise<{ response: ResponseOf<A>; attachment?: Uint8Array }> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const requestId = this.requestIdFor(options);
    if (this.pending.has(requestId)) {
      return Promise.reject(new AppError('conflict', `request_id "${requestId}" is already in flight`));
    }
    const header = JSON.stringify({ ...(params as object | undefined), action, request_id: requestId });
    return new Promise((resolve, reject) => {
      const { signal } = options;
      const onAbort = () => void this.request('stop_generation', { target_request_id: requestId }).catch(() => {});
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        this.pending.delete(requestId);
        signal?.removeEventListener('abort', onAbort);
      };
      this.pending.set(requestId, {
        resolve: ({ frame, attachment }) => {
          settle();
          const { request_id: _id, ...response } = frame;
          resolve({ response: response as ResponseOf<A>, attachment });
        },
        reject: (error) => {
          settle();
          reject(error);
        },
        onChunk,
      });
      const sent = options.attachment ? this.link.sendBinary(header, options.attachment) : this.link.sendText(header);
      sent.catch((error: unknown) => this.pending.get(requestId)?.reject(asAppError(error)));
      if (signal?.aborted) onAbort();
    });
  }

  /** `await client.request('health')`: the typed final answer. */
  async request<A extends Action>(action: A, ...[params, options]: ParamsArgs<A>): Promise<ResponseOf<A>> {
    return (await this.call(action, params, options)).response;
  }

  /** `for await (const chunk of client.stream('chat', {...}))`; the final answer is `.result`. */
  stream<A extends StreamingAction>(action: A, params: RequestInput<A>, options: CallOptions = {}): Streamed<A> {
    const requestId = this.requestIdFor(options);
    const queue = new ChunkQueue<Chunk>();
    const withStream = { ...(params as object), stream: true } as RequestInput<A>;
    const result = this.call(action, withStream, { ...options, requestId }, (chunk) => queue.push(chunk)).then(
      ({ response }) => {
        queue.end();
        return response;
      },
      (error: AppError) => {
        queue.end(error);
        throw error;
      },
    );
    result.catch(() => {}); // the iterator reports the error too; an unread `result` must not be an unhandled rejection
    return Object.assign(queue, { requestId, result });
  }

  /** Stops a request in flight; its own call then rejects with `cancelled`. */
  cancel(requestId: string): Promise<ResponseOf<'stop_generation'>> {
    return this.request('stop_generation', { target_request_id: requestId });
  }

  /** Server push events (`model_loading_progress`, `shutting_down`, ...) and `protocol_error`. Returns the unsubscribe. */
  on<E extends EventName>(event: E, listener: (data: EventData<E>, frame: Record<string, unknown>) => void): () => void;
  on(event: 'protocol_error', listener: (error: { code: string; message: string }) => void): () => void;
  on(event: string, listener: (data: any, frame: Record<string, unknown>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  get open(): boolean {
    return !this.closedWith && this.link.isOpen;
  }

  close(): void {
    this.stop();
    this.link.close();
  }

  /** Refuses new requests and rejects those pending, without touching the channel. */
  protected stop(): void {
    this.fail(new AppError('cancelled', 'Client closed'));
  }

  private receive(message: Inbound): void {
    const frame = JSON.parse(message.kind === 'text' ? message.text : message.header) as Record<string, unknown>;
    const requestId = typeof frame.request_id === 'string' ? frame.request_id : undefined;
    switch (frame.type) {
      case 'chunk':
        if (requestId) this.pending.get(requestId)?.onChunk?.(frame as unknown as Chunk);
        return;
      case 'event':
        return this.emit(String(frame.event), frame.data, frame);
      case 'error': {
        const error = new AppError(isErrorCode(frame.code) ? frame.code : 'internal', String(frame.message), {
          details: frame.details,
        });
        if (requestId && this.pending.has(requestId)) this.pending.get(requestId)?.reject(error);
        else this.emit('protocol_error', error.toJSON(), frame);
        return;
      }
      default:
        if (requestId) {
          this.pending.get(requestId)?.resolve({ frame, attachment: message.kind === 'binary' ? message.payload : undefined });
        }
    }
  }

  private requestIdFor(options: CallOptions): string {
    return options.requestId ?? `${this.idPrefix}-${++this.nextId}`;
  }

  private emit(event: string, data: unknown, frame: Record<string, unknown>): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        listener(data, frame);
      } catch (error) {
        console.error(`tabagent client: "${event}" listener threw`, error);
      }
    }
  }

  private fail(error: AppError): void {
    this.closedWith ??= error;
    for (const pending of [...this.pending.values()]) pending.reject(error);
  }
}

function asAppError(error: unknown): AppError {
  return error instanceof AppError ? error : new AppError('internal', String(error), { cause: error });
}
