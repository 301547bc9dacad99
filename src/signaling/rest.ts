import type { z } from 'zod';
import { AppError } from '../errors.ts';
import { schemaError } from '../protocol/frames.ts';
import { answerInput, iceInput, offerInput, sessionInput } from './schemas.ts';
import type { Signaling } from './service.ts';
import { errorResponse, json, readJsonBody } from '../http/json.ts';

export const REST_PREFIX = '/v1/webrtc/';

/**
 * The seed-compatible signaling routes, plain JSON, with the same behaviour as the tRPC procedures:
 *   POST   /v1/webrtc/offer                 { clientId?, trickle?, resumeToken? }
 *   POST   /v1/webrtc/answer/:sessionId     { answerSdp }        (also POST /v1/webrtc/answer { session_id, sdp })
 *   POST   /v1/webrtc/ice/:sessionId        { candidate }        (also POST /v1/webrtc/ice { session_id, candidate })
 *   GET    /v1/webrtc/session/:sessionId
 *   DELETE /v1/webrtc/session/:sessionId
 */
export async function handleRest(request: Request, path: string, ip: string, signaling: Signaling, maxBodyBytes: number) {
  const method = request.method;
  try {
    const [route, pathId, ...rest] = splitPath(path);
    if (rest.length > 0) throw noRoute(method, path);
    const body = () => readJsonBody(request, maxBodyBytes);
    switch (`${method} ${route}`) {
      case 'POST offer': {
        const fields = await body();
        const input = parse(offerInput, 'offer', { ...fields, resumeToken: fields.resumeToken ?? fields.resume_token });
        const offer = await signaling.offer(ip, input);
        return json({ ...offer, expiresAt: offer.expiresAt.toISOString() });
      }
      case 'POST answer': {
        const fields = await body();
        const input = parse(answerInput, 'answer', {
          sessionId: pathId ?? fields.session_id ?? fields.sessionId,
          answerSdp: fields.answerSdp ?? fields.sdp ?? fields.answer_sdp,
        });
        return json(await signaling.answer(input.sessionId, input.answerSdp));
      }
      case 'POST ice': {
        const fields = await body();
        const sessionId = pathId ?? fields.session_id ?? fields.sessionId;
        const input = parse(iceInput, 'ice', { sessionId, candidate: fields.candidate === undefined ? null : fields.candidate });
        return json(await signaling.ice(input.sessionId, input.candidate));
      }
      case 'GET session':
        return json(await signaling.info(parse(sessionInput, 'session', { sessionId: pathId }).sessionId));
      case 'DELETE session':
        return json(await signaling.close(parse(sessionInput, 'session', { sessionId: pathId }).sessionId));
    }
    const allowed = ALLOWED_METHODS[route];
    if (!allowed) throw noRoute(method, path);
    const response = errorResponse(new AppError('method_not_allowed', `${method} is not allowed on ${path}`));
    response.headers.set('allow', allowed);
    return response;
  } catch (error) {
    return errorResponse(error);
  }
}

const ALLOWED_METHODS: Record<string, string> = { offer: 'POST', answer: 'POST', ice: 'POST', session: 'GET, DELETE' };

function splitPath(path: string): string[] {
  try {
    return path.slice(REST_PREFIX.length).split('/').map(decodeURIComponent);
  } catch {
    throw new AppError('invalid_request', `Malformed percent-encoding in ${path}`);
  }
}

function parse<S extends z.ZodType>(schema: S, route: string, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw schemaError(route, result.error.issues);
  return result.data;
}

function noRoute(method: string, path: string): AppError {
  return new AppError('not_found', `No route ${method} ${path}`);
}
