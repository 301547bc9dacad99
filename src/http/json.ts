import { AppError, toAppError } from '../errors.ts';
import { log } from '../log.ts';
import { limitBody } from './limit.ts';

export function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  return Response.json(body, { status, headers });
}

/** REST errors: `{ "error": { "code", "message", "details"? } }` with the status from the error table. */
export function errorResponse(error: unknown): Response {
  const appError = toAppError(error);
  if (appError.code === 'internal') log.error('request failed', { cause: appError.cause });
  else if (appError.code === 'cancelled') log.debug(appError.message);
  const retryAfterMs = (appError.details as { retry_after_ms?: unknown } | undefined)?.retry_after_ms;
  const headers = typeof retryAfterMs === 'number' ? { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } : undefined;
  return json({ error: appError.toJSON() }, appError.status, headers);
}

/**
 * Reads a JSON body whatever the Content-Type says: the seed's client posts `JSON.stringify(...)` without one,
 * so browsers send `text/plain`. An empty body is `{}`. Bodies over `maxBytes` are refused unread.
 */
export async function readJsonBody(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  const text = await limitBody(request, maxBytes, () => tooLarge(maxBytes))
    .text()
    .catch((error: unknown) => {
      if (error instanceof AppError) throw error;
      throw new AppError('cancelled', 'The client went away before its body arrived', { cause: error });
    });
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (cause) {
    throw new AppError('invalid_json', `Body is not valid JSON: ${(cause as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('invalid_request', 'Body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function tooLarge(maxBytes: number): AppError {
  return new AppError('payload_too_large', `Body is larger than ${maxBytes} bytes`);
}
