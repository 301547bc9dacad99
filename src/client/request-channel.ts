import { AppError, isErrorCode } from '../errors.ts';
import type { EventData, EventName } from '../protocol/events.ts';
import { ChannelLink, DEFAULT_MAX_MESSAGE_SIZE, type Inbound } from '../protocol/link.ts';
import type { Action, RequestInput, ResponseOf, StreamingAction } from '../protocol/registry.ts';
import { ChunkQueue } from './stream.ts';

/** A `chunk` frame of a streaming request; `index` counts a request's chunks from 0. */
export interface Chunk {
  request_id: string;
  type: 'chunk';
  delta: string;
  index?: number;
  [field: string]: unknown;
}

export interface CallOptions {
  /** Your own correlation id; one is made up otherwise. */
  requestId?: string;
  /** Aborting it sends `stop_generation` for this request; the call then rejects with `cancelled`. */
  signal?: AbortSignal;
  /**
   * Binary payload sent with the request (as a binary envelope). A large one is read as its fragments go out, and
   * again if the request is sent anew after a reconnect: leave it unchanged until the call settles.
   */
  attachment?: Uint8Array;
}

/** Parameters are optional for types whose input is. */
export type ParamsArgs<A extends Action> = undefined extends RequestInput<A>
  ? [params?: RequestInput<A>, options?: CallOptions]
  : [params: RequestInput<A>, options?: CallOptions];

export interface Streamed<A extends Action> extends AsyncIterableIterator<Chunk> {
  readonly requestId: string;
  /** The final answer, after the last chunk. */
  readonly result: Promise<ResponseOf<A>>;
}

/** `connected`: requests go out; `reconnecting`: they wait in a bounded queue; `closed`: they fail. */
export type ConnectionState = 'connected' | 'reconnecting' | 'closed';

interface Pending {
  readonly header: string;
  readonly attachment?: Uint8Array;
  /** Handed to a link (it may have died with it: a resume asks the server). */
  sent: boolean;
  /** Chunks delivered so far: the next expected `index`. */
  received: number;
  resolve(answer: { frame: Record<string, unknown>; attachment?: Uint8Array }): void;
  reject(error: AppError): void;
  onChunk?(chunk: Chunk): void;
}

type Listener = (data: unknown, frame: Record<string, unknown>) => void;

/** How long a resuming client waits for the server's `resumed` reply. */
const RESUME_REPLY_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_QUEUED = 256;

/**
 * Requests over a data channel: correlation by request_id, streaming, server events, cancellation, binary.
 * The channel can be swapped (`attach`) after a drop; requests in flight then resume on the new one, each
 * chunk and answer delivered exactly once, and requests made meanwhile wait in a bounded queue.
 * Works wherever there is an RTCDataChannel (browser page, offscreen document, Node + wrtc).
 */
export class RequestChannel {
  private readonly pending = new Map<string, Pending>();
  /** Ids of requests not yet handed to a link, in call order. */
  private readonly queue: string[] = [];
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly idPrefix = Math.random().toString(36).slice(2, 8);
  private link: ChannelLink | undefined;
  private nextId = 0;
  private closedWith: AppError | undefined;
  /** The server said it is shutting down: new requests wait for the next link (when there will be one). */
  private draining = false;
  /** A client that reconnects holds new requests while the server shuts down, instead of having them refused. */
  protected waitsOutShutdown = false;
  private resumeReply: ((unknown: string[]) => void) | undefined;
  private connection: ConnectionState = 'connected';

  constructor(
    channel: RTCDataChannel,
    maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE,
    private readonly maxQueued = DEFAULT_MAX_QUEUED,
  ) {
    this.attach(channel, maxMessageSize);
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
    if (!this.sending && this.queue.length >= this.maxQueued) {
      return Promise.reject(new AppError('not_connected', `Reconnecting, and ${this.maxQueued} requests already wait; try again once connected`));
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
        header,
        attachment: options.attachment,
        sent: false,
        received: 0,
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
      if (this.sending) this.send(requestId);
      else this.queue.push(requestId);
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

  /**
   * Server push events (`model_loading_progress`, `shutting_down`, ...), `protocol_error`, and `connection`
   * (the client's own state: `connected`, `reconnecting`, `closed`). Returns the unsubscribe.
   */
  on<E extends EventName>(event: E, listener: (data: EventData<E>, frame: Record<string, unknown>) => void): () => void;
  on(event: 'protocol_error', listener: (error: { code: string; message: string }) => void): () => void;
  on(event: 'connection', listener: (state: ConnectionState) => void): () => void;
  on(event: string, listener: (data: any, frame: Record<string, unknown>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  get open(): boolean {
    return !this.closedWith && this.link !== undefined && this.link.isOpen;
  }

  get state(): ConnectionState {
    return this.connection;
  }

  /** Requests waiting for a link (made while reconnecting or while the server shut down). */
  get queued(): number {
    return this.queue.length;
  }

  close(): void {
    this.stop();
    this.link?.close();
  }

  /** Refuses new requests and rejects those pending and queued, without touching the channel. */
  protected stop(error = new AppError('cancelled', 'Client closed')): void {
    this.closedWith ??= error;
    this.link = undefined;
    this.queue.length = 0;
    for (const pending of [...this.pending.values()]) pending.reject(error);
    this.setConnection('closed');
  }

  /** The link dropped. By default that ends the client; a reconnecting client overrides it. */
  protected dropped(): void {
    this.stop(new AppError('cancelled', 'Data channel closed'));
  }

  /** Requests wait from now on, until `resumeOn` gives them a new link. */
  protected suspend(): void {
    this.link = undefined;
    this.setConnection('reconnecting');
  }

  /**
   * Carries on over a new channel. `resumed`: the same session on the server, which replays what this side
   * missed and names the requests it never saw (they are sent again). Otherwise a new session: requests that
   * had not streamed anything are sent again; those that had fail with `interrupted` (re-running them would
   * repeat their chunks).
   */
  protected async resumeOn(channel: RTCDataChannel, maxMessageSize: number, resumed: boolean): Promise<void> {
    this.attach(channel, maxMessageSize);
    const inFlight = [...this.pending].filter(([, pending]) => pending.sent);
    let again: string[];
    if (resumed) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const reply = new Promise<string[]>((resolve, reject) => {
        this.resumeReply = resolve;
        timer = setTimeout(() => reject(new AppError('timeout', 'The server did not answer the resume')), RESUME_REPLY_TIMEOUT_MS);
      });
      const pending = inFlight.map(([requestId, { received }]) => ({ request_id: requestId, received }));
      try {
        await this.link?.sendText(JSON.stringify({ type: 'resume', pending }));
        again = await reply;
      } finally {
        clearTimeout(timer);
        this.resumeReply = undefined;
      }
    } else {
      again = [];
      for (const [requestId, pending] of inFlight) {
        if (pending.received === 0) again.push(requestId);
        else pending.reject(new AppError('interrupted', 'The server lost this request mid-stream (it restarted); retry it'));
      }
    }
    this.queue.unshift(...again.filter((id) => this.pending.has(id)));
    this.setConnection('connected');
    for (const requestId of this.queue.splice(0)) this.send(requestId);
  }

  private get sending(): boolean {
    return this.connection === 'connected' && this.link !== undefined && !this.draining;
  }

  private attach(channel: RTCDataChannel, maxMessageSize: number): void {
    this.draining = false;
    const link: ChannelLink = new ChannelLink(channel, {
      maxMessageSize,
      onMessage: (message) => this.receive(message, link),
      onProtocolError: (error) => this.emit('protocol_error', error.toJSON(), { type: 'error', ...error.toJSON() }),
      onClose: () => {
        if (this.link === link && !this.closedWith) this.dropped();
      },
    });
    this.link = link;
  }

  private send(requestId: string): void {
    const pending = this.pending.get(requestId);
    const link = this.link;
    if (!pending || !link) return;
    pending.sent = true;
    const sent = pending.attachment ? link.sendBinary(pending.header, pending.attachment) : link.sendText(pending.header);
    sent.catch((error: unknown) => {
      // A link already replaced: the resume asks the server about the request.
      if (this.link !== link) return;
      const appError = asAppError(error);
      if (appError.code !== 'cancelled') return this.pending.get(requestId)?.reject(appError);
      // The channel closed under it: it never left, so it waits for the next link (or fails with the client).
      pending.sent = false;
      this.queue.push(requestId);
    });
  }

  /**
   * A frame from `from`, which may be a link already replaced: its chunks and answers still count (each is
   * delivered once), but what it says about the connection (a shutdown, a resume reply) is about a past one.
   */
  private receive(message: Inbound, from: ChannelLink): void {
    const frame = JSON.parse(message.kind === 'text' ? message.text : message.header) as Record<string, unknown>;
    const requestId = typeof frame.request_id === 'string' ? frame.request_id : undefined;
    const current = from === this.link;
    switch (frame.type) {
      case 'chunk':
        if (requestId) this.deliverChunk(requestId, frame as unknown as Chunk);
        return;
      case 'event':
        if (frame.event === 'shutting_down' && current) this.draining = this.waitsOutShutdown;
        return this.emit(String(frame.event), frame.data, frame);
      case 'resumed':
        if (!current) return;
        this.resumeReply?.(Array.isArray(frame.unknown) ? frame.unknown.map(String) : []);
        this.resumeReply = undefined;
        return;
      case 'error': {
        const error = new AppError(isErrorCode(frame.code) ? frame.code : 'internal', String(frame.message), {
          details: frame.details,
        });
        const pending = requestId ? this.pending.get(requestId) : undefined;
        if (!pending) return this.emit('protocol_error', error.toJSON(), frame);
        // Refused by a server going down before it did anything: it goes to the next server instead.
        if (error.code === 'shutting_down' && this.waitsOutShutdown && pending.received === 0) {
          if (current) this.draining = true;
          pending.sent = false;
          if (this.sending) this.send(requestId as string);
          else this.queue.push(requestId as string);
          return;
        }
        pending.reject(error);
        return;
      }
      default:
        if (requestId) {
          this.pending.get(requestId)?.resolve({ frame, attachment: message.kind === 'binary' ? message.payload : undefined });
        }
    }
  }

  /** Each chunk once: a replayed one this side already has is dropped. */
  private deliverChunk(requestId: string, chunk: Chunk): void {
    const pending = this.pending.get(requestId);
    if (!pending) return;
    if (typeof chunk.index === 'number') {
      if (chunk.index < pending.received) return;
      pending.received = chunk.index + 1;
    } else pending.received++;
    pending.onChunk?.(chunk);
  }

  private requestIdFor(options: CallOptions): string {
    return options.requestId ?? `${this.idPrefix}-${++this.nextId}`;
  }

  private setConnection(state: ConnectionState): void {
    if (state === this.connection) return;
    this.connection = state;
    this.emit('connection', state, { type: 'connection', state });
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
}

function asAppError(error: unknown): AppError {
  return error instanceof AppError ? error : new AppError('internal', String(error), { cause: error });
}
