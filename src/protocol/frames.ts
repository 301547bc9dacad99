import { z } from 'zod';
import { AppError, type ErrorCode } from '../errors.ts';
import { log } from '../log.ts';
import { actionFromPascalCase, isAction, registry, type Action } from './registry.ts';

/** A request that passed decoding and its type's input schema. */
export interface DecodedRequest {
  requestId: string;
  action: Action;
  params: unknown;
}

export type DecodeResult = { ok: true; request: DecodedRequest } | { ok: false; requestId?: string; error: AppError };

/**
 * A resuming client's first frame on its new channel: the requests it still awaits and how many chunks of each
 * it has. The server replays what is missing and answers `{ "type": "resumed", "unknown": [ids it never saw] }`.
 */
export const resumeFrame = z.strictObject({
  type: z.literal('resume'),
  pending: z.array(z.strictObject({ request_id: z.string().min(1).max(128), received: z.number().int().min(0) })).max(10_000),
});
export type ResumeFrame = z.infer<typeof resumeFrame>;

export type InboundFrame = DecodeResult | { ok: true; resume: ResumeFrame };

/** A text frame from a data channel: a request or a `resume`. Never throws. */
export function decodeFrame(text: string, assignId: () => string): InboundFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (cause) {
    return fail(new AppError('invalid_json', `Message is not valid JSON: ${(cause as Error).message}`));
  }
  if (typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'resume') {
    const parsed = resumeFrame.safeParse(frame);
    return parsed.success ? { ok: true, resume: parsed.data } : fail(schemaError('resume', parsed.error.issues));
  }
  return decodeRequestObject(frame, assignId);
}

/** The request id a decoded frame carried, when it had a usable one (to correlate an error that refuses it). */
export function requestIdOf(decoded: InboundFrame): string | undefined {
  if (!decoded.ok) return decoded.requestId;
  return 'request' in decoded ? decoded.request.requestId : undefined;
}

export interface ErrorFrame {
  request_id?: string;
  type: 'error';
  code: ErrorCode;
  message: string;
  details?: unknown;
}

const MAX_REQUEST_ID_LENGTH = 128;
const ENVELOPE_KEYS = new Set(['action', 'request_id', 'request_type']);

/**
 * Turns one parsed request into a validated one (transports that deliver parsed JSON call it directly: tRPC,
 * native messaging envelopes). Never throws: bad input becomes a typed error that still carries the
 * request_id when the frame had a usable one, so the client can correlate it.
 */
export function decodeRequestObject(frame: unknown, assignId: () => string): DecodeResult {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return fail(new AppError('invalid_request', 'A request must be a JSON object with an "action" field'));
  }
  const fields = frame as Record<string, unknown>;

  const rawId = fields.request_id;
  let requestId: string;
  if (rawId === undefined || rawId === null) requestId = assignId();
  else if ((typeof rawId === 'string' && rawId.length > 0) || Number.isSafeInteger(rawId)) requestId = String(rawId);
  else return fail(invalidField('request_id', 'must be a non-empty string'));
  if (requestId.length > MAX_REQUEST_ID_LENGTH) {
    return fail(invalidField('request_id', `must be at most ${MAX_REQUEST_ID_LENGTH} characters`));
  }

  const action = resolveAction(fields);
  if (action instanceof AppError) return fail(action, requestId);

  // fromEntries defines own properties: a "__proto__" field stays a field (and fails the strict schema).
  const params = Object.fromEntries(Object.entries(fields).filter(([key]) => !ENVELOPE_KEYS.has(key)));

  const parsed = registry[action].input.safeParse(params);
  if (!parsed.success) return fail(schemaError(action, parsed.error.issues), requestId);
  const deep = tooDeepField(params);
  if (deep !== undefined) return fail(invalidField(deep, `nests arrays or objects more than ${MAX_NESTING_DEPTH} levels deep`), requestId);
  return { ok: true, request: { requestId, action, params: parsed.data } };
}

/**
 * How deep a request's field may nest arrays and objects. JSON.parse reads any depth, but JSON.stringify (every
 * answer, the resume outbox) recurses and throws RangeError a few thousand levels down: an `echo` of 100,000
 * nested arrays (200 KB, far under the message cap) left its request unanswered and rejected a promise nobody
 * handles, which ends a Node process. Checked here, every transport is covered.
 */
export const MAX_NESTING_DEPTH = 128;

/** The first field of `params` nested deeper than MAX_NESTING_DEPTH. Iterative: measuring must not recurse either. */
function tooDeepField(params: Record<string, unknown>): string | undefined {
  for (const [field, value] of Object.entries(params)) {
    const stack: Array<[object, number]> = typeof value === 'object' && value !== null ? [[value, 1]] : [];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (depth > MAX_NESTING_DEPTH) return field;
      for (const child of Array.isArray(node) ? node : Object.values(node)) {
        if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
      }
    }
  }
  return undefined;
}

/**
 * What answers a request whose own answer failed to go out (it could not be encoded: a handler returned what JSON
 * cannot carry). Every transport sends it from a `.catch` on its answer, so no request is left unanswered and no
 * rejection goes unhandled.
 */
export function undeliverable(error: unknown, requestId: string): ErrorFrame {
  log.error('an answer could not be sent', { request_id: requestId, error });
  return errorFrame(new AppError('internal', 'The answer could not be encoded'), requestId);
}

export function errorFrame(error: AppError, requestId?: string): ErrorFrame {
  const frame: ErrorFrame = { type: 'error', code: error.code, message: error.message };
  if (requestId !== undefined) frame.request_id = requestId;
  if (error.details !== undefined) frame.details = error.details;
  return frame;
}

function resolveAction(fields: Record<string, unknown>): Action | AppError {
  const { action, request_type: requestType } = fields;
  if (action !== undefined) {
    if (typeof action !== 'string') return invalidField('action', 'must be a string');
    return isAction(action) ? action : unknownAction(action);
  }
  if (requestType !== undefined) {
    if (typeof requestType !== 'string') return invalidField('request_type', 'must be a string');
    return actionFromPascalCase(requestType) ?? (isAction(requestType) ? requestType : unknownAction(requestType));
  }
  return new AppError('invalid_request', 'Missing "action": name the request type, e.g. {"action":"health"}', {
    details: { field: 'action' },
  });
}

function unknownAction(name: string): AppError {
  return new AppError('unknown_action', `Unknown action "${name.slice(0, 64)}"; see docs/REQUEST_TYPES.md`, {
    details: { action: name.slice(0, 64) },
  });
}

function invalidField(field: string, problem: string): AppError {
  return new AppError('invalid_request', `"${field}" ${problem}`, { details: { field } });
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code: string;
  keys?: string[];
}

/**
 * Names the offending field (`messages.0.role`) so the caller knows what to change. Field names and zod's messages
 * (`Unrecognized key: "<name>"`) are the client's own input: clipped, or a request with a 10 MB key was answered
 * with that key four times over.
 */
export function schemaError(action: string, issues: readonly Issue[]): AppError {
  const described = issues.slice(0, 10).map((issue) => {
    const path = [...issue.path, ...(issue.code === 'unrecognized_keys' && issue.keys ? [issue.keys[0]] : [])];
    return { field: path.map((key) => clip(String(key), 64)).join('.') || '(params)', message: clip(issue.message, 200) };
  });
  const first = described[0];
  return new AppError('invalid_request', `Invalid "${action}" request: ${first.field}: ${first.message}`, {
    details: { field: first.field, issues: described },
  });
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function fail(error: AppError, requestId?: string): DecodeResult {
  return requestId === undefined ? { ok: false, error } : { ok: false, requestId, error };
}
