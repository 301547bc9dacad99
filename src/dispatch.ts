import { AppError, toAppError } from './errors.ts';
import { errorFrame, type DecodedRequest, type ErrorFrame } from './protocol/frames.ts';
import type { CallContext, Emit, Handler, Handlers, Identity, InFlight, RequestOwner } from './protocol/handlers.ts';
import { registry, specOf, type Action, type RequestParams } from './protocol/registry.ts';
import { log } from './log.ts';
import type { Stats } from './stats.ts';

/**
 * Whoever sends requests: a session, a WebSocket, a native messaging port, or the tRPC callers of one key. Owns its
 * in-flight requests, and acts as its `identity`.
 */
export class Caller implements RequestOwner {
  readonly inFlight = new Map<string, InFlight>();
  private nextId = 0;

  /** @param maxInFlight requests this caller may have running at once; more get `rate_limited`. */
  constructor(
    readonly id: string,
    readonly identity: Identity,
    readonly maxInFlight = Number.POSITIVE_INFINITY,
  ) {}

  assignRequestId = (): string => `srv-${++this.nextId}`;

  /** Cancels matching in-flight requests, whose final answer becomes `reason`; returns their ids. */
  cancel(reason: AppError | string, match: (request: InFlight) => boolean = () => true): string[] {
    const error = typeof reason === 'string' ? new AppError('cancelled', reason) : reason;
    const stopped: string[] = [];
    for (const request of this.inFlight.values()) {
      if (!match(request)) continue;
      request.cancellation.abort(error);
      stopped.push(request.requestId);
    }
    return stopped;
  }
}

/**
 * A request's cancellation. Its AbortSignal is made when the handler first asks for it: most requests (health,
 * echo, settings) never do, and an AbortController with its signal was the largest thing the dispatcher made per
 * request (createAbortSignal, 2.3 us of about 25 us of JavaScript per request in the server's profile).
 */
export class Cancellation {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

export interface FinalAnswer {
  frame: Record<string, unknown> | ErrorFrame;
  attachment?: Uint8Array;
}

export interface ExecuteOptions {
  emit?: Emit;
  attachment?: Uint8Array;
  origin?: object;
  /** A transport's own cancellation (an aborted HTTP request), joined with the caller's. */
  signal?: AbortSignal;
}

/** The one path every transport's requests take: in-flight bookkeeping, handler call, one final answer. */
export class Dispatcher {
  private accepting = true;
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly handlers: Handlers,
    private readonly stats: Stats,
  ) {}

  get inFlightCount(): number {
    return this.running;
  }

  /** Runs a decoded request; resolves with exactly one final answer (a response or an error frame), never rejects. */
  async execute(caller: Caller, request: DecodedRequest, options: ExecuteOptions = {}): Promise<FinalAnswer> {
    const { requestId, action } = request;
    try {
      const { result, attachment } = await this.run(caller, request, options);
      return { frame: { request_id: requestId, type: registry[action].response, ...result }, attachment };
    } catch (error) {
      return { frame: errorFrame(toAppError(error), requestId) };
    }
  }

  /**
   * Runs a decoded request: its handler's result and binary part, or the AppError that answers it (thrown). For
   * callers that answer in a shape of their own (tRPC's `rpc.*`); transports take `execute`'s frames.
   */
  async run(caller: Caller, request: DecodedRequest, options: ExecuteOptions = {}): Promise<{ result: object; attachment?: Uint8Array }> {
    const { requestId, action } = request;
    if (!this.accepting && !specOf(action).answersDuringShutdown) {
      throw new AppError('shutting_down', 'Server is shutting down');
    }
    if (specOf(action).adminOnly && !caller.identity.admin) {
      const message = `"${action}" changes what every caller shares: it needs an admin key (TABAGENT_ADMIN_KEYS)`;
      throw new AppError('forbidden', message, { details: { action } });
    }
    if (caller.inFlight.has(requestId)) {
      throw new AppError('conflict', `request_id "${requestId}" is already in flight`);
    }
    if (caller.inFlight.size >= caller.maxInFlight) {
      throw new AppError('rate_limited', `More than ${caller.maxInFlight} requests in flight; wait for answers`);
    }

    const cancellation = new Cancellation();
    const unlink = options.signal && follow(options.signal, cancellation);
    caller.inFlight.set(requestId, { requestId, action, startedAt: Date.now(), cancellation, origin: options.origin });
    this.running++;

    let settled = false;
    let chunks = 0;
    let attachment: Uint8Array | undefined;
    const emit = options.emit;
    const live = () => !settled && !cancellation.aborted;
    const ctx: CallContext = {
      requestId,
      action,
      get signal() {
        return cancellation.signal;
      },
      caller,
      owner: caller.identity.id,
      attachment: options.attachment,
      chunk: (fields) => {
        // `index` numbers a request's chunks from 0: a resumed client skips the ones it has.
        if (live() && emit) emit({ request_id: requestId, type: 'chunk', ...fields, index: chunks++ });
      },
      event: (name, data) => {
        if (live() && emit) emit({ type: 'event', event: name, request_id: requestId, data });
      },
      attach: (bytes) => {
        attachment = bytes;
      },
    };

    const started = performance.now();
    let ok = false;
    try {
      const handler = this.handlers[action] as Handler<Action>;
      const result = await handler(request.params as RequestParams<Action>, ctx);
      if (cancellation.aborted) throw cancellation.reason;
      ok = true;
      return { result, attachment };
    } catch (thrown) {
      const error = toAppError(cancellation.aborted ? cancellation.reason : thrown);
      if (error.code === 'internal') log.error(`"${action}" failed`, { request_id: requestId, cause: error.cause });
      throw error;
    } finally {
      settled = true;
      unlink?.();
      caller.inFlight.delete(requestId);
      this.running--;
      if (this.running === 0) this.wakeIdleWaiters();
      this.stats.recordRequest(action, performance.now() - started, ok);
    }
  }

  /** New requests get `shutting_down` from now on; requests already running continue. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * The end of a graceful shutdown for one transport: requests in flight get `graceMs` to finish; then those of
   * `callers` still running are cancelled with `cancellation` and get `flushMs` to produce their final answers.
   */
  async drainOrCancel(
    graceMs: number,
    callers: () => Iterable<Caller>,
    cancellation = new AppError('shutting_down', 'Server shut down before the request finished'),
    flushMs = 1_000,
  ): Promise<void> {
    if (await this.drain(graceMs)) return;
    for (const caller of callers()) caller.cancel(cancellation);
    await this.drain(flushMs);
  }

  /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private wakeIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** Aborts `cancellation` when `signal` aborts; returns the unsubscribe. */
function follow(signal: AbortSignal, cancellation: Cancellation): () => void {
  if (signal.aborted) {
    cancellation.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => cancellation.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
