/** A session's states, the moves between them, and what `webrtc.session` tells of one. */
import { AppError } from '../errors.ts';

/**
 * `suspended`: the peer is gone but the session waits, for the resume grace period, for its client to come
 * back with the resume token; its requests keep running and their answers are kept.
 */
export type SessionState = 'waiting_for_answer' | 'ice_gathering' | 'connected' | 'suspended' | 'disconnected';

/** `waiting_for_answer` is reachable from every live state: a resume gives the session a new peer and offer. */
const NEXT_STATES: Record<SessionState, readonly SessionState[]> = {
  waiting_for_answer: ['ice_gathering', 'suspended', 'disconnected'],
  ice_gathering: ['connected', 'waiting_for_answer', 'suspended', 'disconnected'],
  connected: ['waiting_for_answer', 'suspended', 'disconnected'],
  suspended: ['waiting_for_answer', 'disconnected'],
  disconnected: [],
};

/** Throws the `conflict` that refuses a move the table above does not allow. */
export function assertTransition(from: SessionState, to: SessionState): void {
  if (!NEXT_STATES[from].includes(to)) throw new AppError('conflict', `Session is ${from}; it cannot become ${to}`);
}

export interface SessionInfo {
  id: string;
  clientId: string;
  state: SessionState;
  createdAt: string;
  lastActivity: string;
  expiresAt: string;
  counts: { channels: number; requests: number; inFlight: number; iceCandidates: number; resumes: number };
}
