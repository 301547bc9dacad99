/**
 * The contract between the dispatcher and the engines: what a handler of a request type receives and returns, and
 * which engine must provide which handlers (from each declaration's `engine`, so that a missing one is a compile
 * error, and no list of handlers is kept by hand).
 */
import type { Engine } from './define.ts';
import type { EventData, EventName } from './events.ts';
import type { Action, HandlerResult, Registry, RequestParams } from './registry.ts';

/** Who is calling. */
export interface Identity {
  /** The key's id, or `anonymous`: the owner of the sessions it opens and of the data it stores. */
  readonly id: string;
  /** May change what every caller shares (server params, models): an admin key, or anyone when keys are off. */
  readonly admin: boolean;
}

/** Fields of a streaming `chunk` frame; `delta` is the text the chunk adds. */
export type ChunkFields = { delta: string } & Record<string, unknown>;

/** Where a request's chunk and event frames go while it runs. Must not throw. */
export type Emit = (frame: Record<string, unknown>) => void;

export interface InFlight {
  readonly requestId: string;
  readonly action: Action;
  readonly startedAt: number;
  /** Aborts the request; its handler sees it on `ctx.signal`. */
  readonly cancellation: { abort(reason: unknown): void };
  /** The transport-side owner (a channel), so closing it cancels exactly its requests. */
  readonly origin?: object;
}

/** Whoever sent the request (a session, a socket, a port, a key's tRPC calls): its requests, and who it is. */
export interface RequestOwner {
  readonly identity: Identity;
  readonly inFlight: ReadonlyMap<string, InFlight>;
  /** Cancels its matching in-flight requests, whose final answer becomes `reason`; returns their ids. */
  cancel(reason: string, match?: (request: InFlight) => boolean): string[];
}

export interface CallContext {
  readonly requestId: string;
  readonly action: Action;
  /** Aborted by `stop_generation`, a closed channel or session, or shutdown. Pass it to every upstream call. */
  readonly signal: AbortSignal;
  readonly caller: RequestOwner;
  /** Whose stored data (history, documents, settings) this request reads and writes: the caller's key id. */
  readonly owner: string;
  /** Binary payload that came with the request, if any. */
  readonly attachment?: Uint8Array;
  chunk(fields: ChunkFields): void;
  event<E extends EventName>(name: E, data: EventData<E>): void;
  /** Sends bytes with the final answer (as a binary envelope on the data channel). */
  attach(bytes: Uint8Array): void;
}

export type Handler<A extends Action> = (
  params: RequestParams<A>,
  ctx: CallContext,
) => Promise<HandlerResult<A>> | HandlerResult<A>;

export type Handlers = { [A in Action]: Handler<A> };

/** The request types an engine serves: those whose declaration names it. */
export type ActionOf<E extends Engine> = { [A in Action]: Registry[A]['engine'] extends E ? A : never }[Action];

/** Everything engine `E` must answer, by the registry: an engine built as this misses no request type. */
export type EngineHandlers<E extends Engine> = { [A in ActionOf<E>]: Handler<A> };
