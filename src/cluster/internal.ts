/**
 * How the instances of a cluster ask each other to perform signaling on a session one of them holds: a POST to
 * `<node's internal URL>/internal/v1/signaling` with the operation, the caller's identity and the arguments, signed
 * by the secret they share (TABAGENT_CLUSTER_SECRET). The answer is what the owner would have answered the client
 * itself, errors included. A balancer must not route clients to `/internal/` (deploy/haproxy.cfg refuses it); the
 * secret refuses them anyway.
 */
import { z } from 'zod';
import { AppError, isErrorCode } from '../errors.ts';
import { errorResponse, json, readJsonBody } from '../http/json.ts';
import { sameSecret } from '../security/auth.ts';
import { answerInput, iceInput, offerInput, sessionId, sessionInput } from '../signaling/schemas.ts';
import type { RemoteOperation, Signaling } from '../signaling/service.ts';

export const INTERNAL_PATH = '/internal/v1/signaling';
export const CLUSTER_SECRET_HEADER = 'x-tabagent-cluster-secret';
/** A forwarded call gives up on a node this slow: the client's own call would have long failed. */
const CALL_TIMEOUT_MS = 30_000;
/** Signaling bodies are an SDP at most, a few KiB. */
const MAX_BODY_BYTES = 1024 * 1024;

const identity = z.object({ id: z.string().min(1).max(64), admin: z.boolean() }).nullable();
const ARGS: Record<RemoteOperation, z.ZodType> = {
  resume: offerInput.unwrap().extend({ ip: z.string().max(64), resumeToken: z.string().min(1).max(128) }),
  answer: answerInput,
  ice: iceInput,
  info: sessionInput,
  close: sessionInput,
  backlog: z.object({ sessionId, ticket: z.string().min(1).max(64).optional(), after: z.number().int().min(0) }),
};
const call = z.object({ operation: z.enum(Object.keys(ARGS) as [RemoteOperation, ...RemoteOperation[]]), identity, args: z.unknown() });

/** Serves another node's call on this node's own sessions (`signaling`, not routed further). */
export async function serveInternal(request: Request, secret: string, signaling: Signaling): Promise<Response> {
  if (!sameSecret(request.headers.get(CLUSTER_SECRET_HEADER) ?? '', secret)) {
    return errorResponse(new AppError('forbidden', 'Internal cluster route: not for clients'));
  }
  try {
    const body = call.parse(await readJsonBody(request, MAX_BODY_BYTES));
    const as = signaling.as(body.identity ?? undefined);
    const args = ARGS[body.operation].parse(body.args) as never;
    return json(await perform(as, body.operation, args));
  } catch (error) {
    if (error instanceof z.ZodError) return errorResponse(new AppError('invalid_request', `Bad internal call: ${error.issues[0]?.message}`));
    return errorResponse(error);
  }
}

function perform(signaling: Signaling, operation: RemoteOperation, args: Record<string, never>): Promise<unknown> | unknown {
  switch (operation) {
    case 'resume':
      return signaling.offer(args.ip, args);
    case 'answer':
      return signaling.answer(args.sessionId, args.answerSdp);
    case 'ice':
      return signaling.ice(args.sessionId, args.candidate);
    case 'info':
      return signaling.info(args.sessionId);
    case 'close':
      return signaling.close(args.sessionId);
    case 'backlog':
      return signaling.backlog(args as never);
  }
}

/**
 * Performs `operation` on the node at `url`, with its answer, or the AppError it answered. A node that does not
 * answer at all (gone since the directory last saw it) is `node_gone`.
 */
export async function callNode<T>(url: string, secret: string, operation: RemoteOperation, identity: unknown, args: object): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(INTERNAL_PATH, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', [CLUSTER_SECRET_HEADER]: secret },
      body: JSON.stringify({ operation, identity: identity ?? null, args }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (cause) {
    throw nodeGone(cause);
  }
  const body = (await response.json().catch(() => undefined)) as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
  if (response.ok) return body as T;
  const error = body?.error;
  if (error && isErrorCode(error.code)) throw new AppError(error.code, String(error.message), { details: error.details });
  throw new AppError('internal', `The node holding the session answered ${response.status}`);
}

export function nodeGone(cause?: unknown): AppError {
  return new AppError('node_gone', 'The server instance that held this session is gone; open a new session', { cause });
}
