/**
 * The TabAgent server's native messaging envelope, served beside the data channel's request frames:
 *
 *   in:  { "route": "health" | "Health", "request_id": "r1", "payload": { ...params } }
 *   out: { "request_id": "r1", "success": true, "data": { "type": "health", ...answer } }
 *        { "request_id": "r1", "success": false, "error": { "code", "message", "details"? } }
 *
 * An envelope is turned into a request frame and decoded exactly like one (`decodeRequestObject`).
 */
import { AppError } from '../../errors.ts';
import { decodeRequestObject, type DecodeResult, type ErrorFrame } from '../../protocol/frames.ts';

const ENVELOPE_FIELDS = new Set(['route', 'request_id', 'payload']);
/** Fields the envelope itself carries: inside `payload` they would be ambiguous. */
const RESERVED_PAYLOAD_FIELDS = ['action', 'request_type', 'request_id'];

export function isRouteEnvelope(frame: unknown): frame is Record<string, unknown> {
  return typeof frame === 'object' && frame !== null && !Array.isArray(frame) && Object.hasOwn(frame, 'route');
}

export function decodeRouteEnvelope(envelope: Record<string, unknown>, assignId: () => string): DecodeResult {
  const { route, request_id: requestId, payload = {} } = envelope;
  const problem = (field: string, message: string): DecodeResult => {
    const error = new AppError('invalid_request', `Envelope "${field}" ${message}`, { details: { field } });
    // The id is echoed only when it is one decodeRequestObject would accept.
    const usableId = (typeof requestId === 'string' && requestId.length > 0 && requestId.length <= 128) || Number.isSafeInteger(requestId);
    return usableId ? { ok: false, requestId: String(requestId), error } : { ok: false, error };
  };
  const unknown = Object.keys(envelope).find((key) => !ENVELOPE_FIELDS.has(key));
  if (unknown !== undefined) return problem(unknown.slice(0, 64), 'is not an envelope field (route, request_id, payload)');
  if (typeof route !== 'string' || route.length === 0) return problem('route', 'must name a request type, e.g. "health" or "Health"');
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return problem('payload', 'must be an object of params');
  const reserved = RESERVED_PAYLOAD_FIELDS.find((key) => Object.hasOwn(payload, key));
  if (reserved !== undefined) return problem(`payload.${reserved}`, 'belongs to the envelope, not its payload');
  // route goes in as request_type, which takes either spelling (snake_case action or PascalCase).
  return decodeRequestObject({ ...payload, request_type: route, request_id: requestId }, assignId);
}

/** A final answer frame (`{ request_id, type, ...answer }` or an error frame) in the envelope's shape. */
export function routeEnvelopeAnswer(frame: Record<string, unknown> | ErrorFrame): Record<string, unknown> {
  const { request_id: requestId, ...answer } = frame as Record<string, unknown>;
  const head = requestId === undefined ? {} : { request_id: requestId };
  if (answer.type !== 'error') return { ...head, success: true, data: answer };
  const { type: _type, ...error } = answer;
  return { ...head, success: false, error };
}
