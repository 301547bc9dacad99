import { AppError, toAppError } from '../errors.ts';
import { log } from '../log.ts';

export function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  return Response.json(body, { status, headers });
}

/** REST errors: `{ "error": { "code", "message", "details"? } }` with the status from the error table. */
export function errorResponse(error: unknown): Response {
  const appError = toAppError(error);
  if (appError.code === 'internal') log.error('request failed', { cause: appError.cause });
  return json({ error: appError.toJSON() }, appError.status);
}

/**
 * Reads a JSON body whatever the Content-Type says: the seed's client posts `JSON.stringify(...)` without one,
 * so browsers send `text/plain`. An empty body is `{}`. Bodies over `maxBytes` are refused unread.
 */
export async function readJsonBody(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const text = await readText(request, maxBytes);
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

async function readText(request: Request, maxBytes: number): Promise<string> {
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.releaseLock(); // not cancel(): see limit.ts
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(concat(chunks, size));
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function tooLarge(maxBytes: number): AppError {
  return new AppError('payload_too_large', `Body is larger than ${maxBytes} bytes`);
}
