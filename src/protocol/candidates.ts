import { z } from 'zod';
import { AppError } from '../errors.ts';

/** A client ICE candidate as clients send it: an RTCIceCandidateInit, a bare `candidate:` line, or null. */
export const candidateInput = z.union([
  z.null(),
  z.string().max(4096),
  z.object({
    candidate: z.string().max(4096).optional(),
    sdpMid: z.string().max(64).nullish(),
    sdpMLineIndex: z.number().int().min(0).max(1024).nullish(),
    usernameFragment: z.string().max(256).nullish(),
  }),
]);
export type CandidateInput = z.infer<typeof candidateInput>;

/** Returns the candidate to add, or undefined for an end-of-candidates marker (null or an empty candidate). */
export function normalizeCandidate(input: CandidateInput): RTCIceCandidateInit | undefined {
  if (input === null) return undefined;
  if (typeof input === 'string') {
    const line = input.trim().replace(/^a=/, '');
    if (line === '') return undefined;
    if (!line.startsWith('candidate:')) {
      throw new AppError('invalid_request', 'A candidate string must be an SDP "candidate:" line', { details: { field: 'candidate' } });
    }
    return { candidate: line, sdpMLineIndex: 0 };
  }
  if (!input.candidate) return undefined;
  const init: RTCIceCandidateInit = { candidate: input.candidate };
  if (input.sdpMid != null) init.sdpMid = input.sdpMid;
  if (input.sdpMLineIndex != null) init.sdpMLineIndex = input.sdpMLineIndex;
  if (input.usernameFragment != null) init.usernameFragment = input.usernameFragment;
  if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
  return init;
}
