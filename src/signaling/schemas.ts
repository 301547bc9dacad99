import { z } from 'zod';
import { candidateInput } from '../protocol/candidates.ts';

/** Signaling inputs, shared by the tRPC procedures and the REST routes. */
export const sessionId = z.string().min(1).max(128);

/** An SDP is a few KiB; the bound stops a client from parking megabytes in a session. */
const sdp = z.string().min(1).max(128 * 1024);

export const offerInput = z
  .object({
    clientId: z.string().min(1).max(256).optional(),
    trickle: z.boolean().optional(),
    resumeToken: z.string().min(1).max(128).optional(),
  })
  .default({});
export const answerInput = z.object({ sessionId, answerSdp: sdp });
export const iceInput = z.object({ sessionId, candidate: candidateInput });
export const sessionInput = z.object({ sessionId });
/** `ticket`: the offer's `eventsTicket`, which stands in for the API key (an EventSource cannot send headers). */
export const eventsInput = z.object({ sessionId, ticket: z.string().min(1).max(64).optional(), lastEventId: z.string().max(32).nullish() });
export const iceServersInput = z.object({ clientId: z.string().min(1).max(256).optional() }).default({});
