import { initTRPC, TRPCError } from '@trpc/server';
import superjson, { type SuperJSONResult } from 'superjson';
import type { Dispatcher, Caller } from '../src/dispatch.ts';
import { AppError, type ErrorCode } from '../src/errors.ts';
import { schemaError } from '../src/protocol/frames.ts';
import type { Signaling } from '../src/signaling/service.ts';

/** What every procedure can reach: the caller's address and the server's services. */
export interface Context {
  ip: string;
  /** Signaling as the caller's key; for a `webrtc.events` call without one, as whoever holds the session's ticket. */
  signaling: Signaling;
  dispatcher: Dispatcher;
  /**
   * The API key's caller for `rpc.*`: its identity owns what the call stores, and `stop_generation` /
   * `halt_status` see the requests of that key's tRPC calls. Throws `unauthorized` for a call without a key.
   */
  rpcCaller(): Caller;
}

type TRPCCode = TRPCError['code'];

const TRPC_CODE_BY_STATUS: Record<number, TRPCCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'TOO_MANY_REQUESTS',
  499: 'CLIENT_CLOSED_REQUEST',
  500: 'INTERNAL_SERVER_ERROR',
  503: 'SERVICE_UNAVAILABLE',
  504: 'TIMEOUT',
};

export function toTRPCError(error: AppError): TRPCError {
  return new TRPCError({ code: TRPC_CODE_BY_STATUS[error.status] ?? 'INTERNAL_SERVER_ERROR', message: error.message, cause: error });
}

/** tRPC's own errors (bad route, bad content type, oversize body) in our codes. */
const APP_CODE_BY_TRPC_CODE: Partial<Record<TRPCCode, ErrorCode>> = {
  BAD_REQUEST: 'invalid_request',
  PARSE_ERROR: 'invalid_json',
  UNSUPPORTED_MEDIA_TYPE: 'invalid_request',
  NOT_FOUND: 'not_found',
  METHOD_NOT_SUPPORTED: 'method_not_allowed',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  TOO_MANY_REQUESTS: 'rate_limited',
  CLIENT_CLOSED_REQUEST: 'cancelled',
  TIMEOUT: 'timeout',
};

/** Our code for any tRPC error: an AppError keeps its own; tRPC's input validation is `invalid_request`. */
function appErrorOf(error: TRPCError, path: string | undefined): AppError | undefined {
  const cause = error.cause;
  if (cause instanceof AppError) return cause;
  if (error.code === 'BAD_REQUEST' && cause && 'issues' in cause && Array.isArray(cause.issues)) {
    return schemaError(path ?? 'input', cause.issues);
  }
  return undefined;
}

/**
 * superjson, strict about what it reads: an input that is not its envelope, `{ "json": <input>, "meta"?: {…} }` (or
 * `{}` for none), is refused with 400. superjson alone reads anything else as "no input", so `"x"` or `{"a":1}`
 * posted to `webrtc.offer` made a session.
 */
const transformer = {
  input: { serialize: (value: unknown) => superjson.serialize(value), deserialize: (value: unknown) => superjson.deserialize(envelope(value)) },
  output: superjson,
};

function envelope(value: unknown): SuperJSONResult {
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isRecord(value) && Object.keys(value).every((key) => key === 'json' || key === 'meta') && (value.meta === undefined || isRecord(value.meta))) {
    return value as unknown as SuperJSONResult;
  }
  throw new TRPCError({ code: 'BAD_REQUEST', message: 'Input must be superjson\'s envelope: { "json": <input>, "meta"?: {...} }' });
}

const t = initTRPC.context<Context>().create({
  transformer,
  isDev: false,
  sse: { ping: { enabled: true, intervalMs: 15_000 } },
  errorFormatter({ shape, error, path }) {
    const appError = appErrorOf(error, path);
    const appCode: ErrorCode = appError?.code ?? APP_CODE_BY_TRPC_CODE[error.code] ?? 'internal';
    const data = { ...shape.data, appCode, ...(appError?.details === undefined ? {} : { details: appError.details as unknown }) };
    return { ...shape, message: appError?.message ?? shape.message, data };
  },
});

/** Procedures throw AppError; this turns it into the TRPCError whose HTTP status fits. */
const appErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof AppError) throw toTRPCError(result.error.cause);
  return result;
});

export const router = t.router;
export const procedure = t.procedure.use(appErrors);

/** The error shape clients see (carries `data.appCode`); procedures built outside `t` declare it too. */
export type ErrorShape = (typeof t._config.$types)['errorShape'];
