/**
 * Every error a client can see, in one table: the wire code and the HTTP status it maps to.
 * Data-channel answers carry the code; REST answers carry the code and the status; tRPC maps the status.
 */
export const ERROR_CODES = {
  invalid_json: 400,
  invalid_request: 400,
  /** The prompt (with what it asks to generate) does not fit the model's context: shorten it; nothing was cut. */
  context_length_exceeded: 400,
  unknown_action: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  /** In a cluster: the instance that held the session is gone (stopped, or dead); a new session works. */
  node_gone: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  session_limit: 429,
  cancelled: 499,
  internal: 500,
  not_supported: 501,
  upstream_error: 502,
  backend_unavailable: 503,
  server_busy: 503,
  shutting_down: 503,
  /** The link dropped and the answer could not be recovered (resume buffer bound, grace over, server restart). */
  interrupted: 503,
  /** The client is reconnecting and its queue of unsent requests is full. */
  not_connected: 503,
  timeout: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one error class of the project: a code from the table, a message a user can act on, optional details. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }

  get status(): number {
    return ERROR_CODES[this.code];
  }

  /** The wire shape shared by every transport: `{ code, message, details? }`. */
  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Anything thrown becomes an AppError; unknown failures become `internal` and keep their cause for logs. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof Error && error.name === 'TimeoutError') {
    return new AppError('timeout', 'The request timed out', { cause: error });
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new AppError('cancelled', 'The request was cancelled', { cause: error });
  }
  return new AppError('internal', 'Internal server error', { cause: error });
}

