/**
 * The one inbound pipeline: every message a transport receives (a data channel's, a WebSocket's, a native messaging
 * port's) takes it, in the same order: rate → decode → execute → answer. A transport is an `Endpoint`: how a frame
 * goes back, and, where it can, how a request's frames are kept for a resume. Rate, resume and cancellation rules
 * change here, once.
 */
import type { Caller, Dispatcher, FinalAnswer } from './dispatch.ts';
import { AppError, toAppError } from './errors.ts';
import { errorFrame, requestIdOf, undeliverable, type InboundFrame, type ResumeFrame } from './protocol/frames.ts';
import type { Emit } from './protocol/handlers.ts';

/** One connection of a transport, as the pipeline sees it. */
export interface Endpoint {
  /** Whose requests these are: its in-flight requests, its identity. */
  readonly caller: Caller;
  /** The connection's message budget; an empty one answers `rate_limited` and the connection stays. */
  readonly messageRate: { take(): AppError | undefined };
  /** A frame back to the client, on this connection. Never throws; a closed connection drops it. */
  send(frame: object, attachment?: Uint8Array): void;
  /**
   * A request that passed decoding is about to run: where its chunks, events and answer go, and the scope whose
   * closing cancels it. Without it they go back through `send`, scoped to the endpoint.
   */
  route?(requestId: string): Route;
  /** A `resume` frame, where this connection can resume; elsewhere it is answered `invalid_request`, saying why. */
  resume?(frame: ResumeFrame): void;
  /** Why this connection cannot resume (the `invalid_request` message), when it has no `resume`. */
  readonly notResumable?: string;
}

/** Where one request's frames go. */
export interface Route {
  /** Chunks and events; absent: the request's answer comes whole, without them. */
  emit?: Emit;
  deliver(answer: FinalAnswer): void;
  /** Closing it cancels the request (see `Caller.cancel`). */
  origin: object;
}

/**
 * Reads one message as its transport received it: its frame, decoded (request ids assigned by `assignId` where the
 * client gave none), and the binary part that came with it. May throw the AppError of a message the transport
 * cannot read at all (too large, an unknown binary kind); that error is the answer.
 */
export type ReadMessage = (assignId: () => string) => { frame: InboundFrame; attachment?: Uint8Array };

/** Serves one message. Never throws: every outcome is a frame through `endpoint`. */
export function serveMessage(dispatcher: Dispatcher, endpoint: Endpoint, read: ReadMessage): void {
  const limited = endpoint.messageRate.take();
  let decoded: InboundFrame;
  let attachment: Uint8Array | undefined;
  try {
    ({ frame: decoded, attachment } = read(endpoint.caller.assignRequestId));
  } catch (error) {
    return endpoint.send(errorFrame(toAppError(error)));
  }
  if (limited) return endpoint.send(errorFrame(limited, requestIdOf(decoded)));
  if (!decoded.ok) return endpoint.send(errorFrame(decoded.error, decoded.requestId));
  if ('resume' in decoded) {
    if (endpoint.resume) return endpoint.resume(decoded.resume);
    return endpoint.send(errorFrame(new AppError('invalid_request', endpoint.notResumable ?? 'Not resumable', { details: { field: 'type' } })));
  }

  const { request } = decoded;
  const route = endpoint.route?.(request.requestId) ?? {
    emit: (frame: Record<string, unknown>) => endpoint.send(frame),
    deliver: ({ frame, attachment }: FinalAnswer) => endpoint.send(frame, attachment),
    origin: endpoint,
  };
  void dispatcher
    .execute(endpoint.caller, request, { emit: route.emit, attachment, origin: route.origin })
    .then(route.deliver)
    .catch((error) => route.deliver({ frame: undeliverable(error, request.requestId) }));
}
