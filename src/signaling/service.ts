import type { Config, IceServer } from '../config.ts';
import { iceServersFor } from '../peer/ice-servers.ts';
import { AppError } from '../errors.ts';
import type { Identity } from '../protocol/handlers.ts';
import type { CandidateInput } from '../protocol/candidates.ts';
import type { SessionManager } from '../session/manager.ts';
import type { Session, SessionInfo } from '../session/session.ts';

export interface OfferResult {
  sessionId: string;
  /** Keep it secret: `offer({ resumeToken })` gives this session a new peer after a drop, losing nothing. */
  resumeToken: string;
  /** Lets an EventSource follow `webrtc.events` of this session without the API key (which must not go in a URL). */
  eventsTicket: string;
  /** True when this offer resumes an existing session. */
  resumed: boolean;
  offerSdp: string;
  iceServers: IceServer[];
  expiresAt: Date;
}

/**
 * The signaling operations, one implementation behind both the tRPC procedures and the REST routes, on behalf of
 * one identity (`as`): it owns the sessions it creates, and sees no one else's. Without an identity (a call that
 * came without a key), only `events` with the session's ticket is possible.
 */
export class Signaling {
  constructor(
    readonly sessions: SessionManager,
    private readonly config: Config,
    /** Not defaulted: `undefined` means no identity at all, never the anonymous one. */
    readonly identity: Identity | undefined,
  ) {}

  /** The same operations for `identity` (an API key's; everyone is anonymous without keys). */
  as(identity: Identity | undefined): Signaling {
    return new Signaling(this.sessions, this.config, identity);
  }

  private get owner(): Identity {
    if (!this.identity) throw new AppError('unauthorized', 'Missing API key: send Authorization: Bearer <key>');
    return this.identity;
  }

  /**
   * `trickle`: answer at once, without waiting for the server's candidates (they come with the answer's reply).
   * `resumeToken`: a new peer for that session instead of a new session.
   */
  async offer(ip: string, input: { clientId?: string; trickle?: boolean; resumeToken?: string }): Promise<OfferResult> {
    const identity = this.owner;
    const { session, offerSdp } = input.resumeToken
      ? await this.sessions.resume(input.resumeToken, { ...input, owner: identity.id })
      : await this.sessions.create({ ...input, ip, identity });
    return {
      sessionId: session.id,
      resumeToken: session.resumeToken,
      eventsTicket: session.eventsTicket,
      resumed: Boolean(input.resumeToken),
      offerSdp,
      iceServers: this.iceServers(input.clientId ?? session.clientId).iceServers,
      expiresAt: new Date(session.expiresAt),
    };
  }

  /** STUN/TURN servers for a client's own peer; TURN ones carry ephemeral credentials for `user`. */
  iceServers(user: string): { iceServers: IceServer[]; expiresAt?: Date } {
    return iceServersFor(this.config, user);
  }

  /** `candidates`: the server's ICE candidates so far, for clients that trickle. */
  async answer(sessionId: string, answerSdp: string): Promise<{ success: true; candidates: RTCIceCandidateInit[] }> {
    const candidates = await this.sessions.answer(sessionId, answerSdp, this.owner.id);
    return { success: true, candidates };
  }

  async ice(sessionId: string, candidate: CandidateInput): Promise<{ success: true }> {
    await this.sessions.addIceCandidate(sessionId, candidate, this.owner.id);
    return { success: true };
  }

  /** The caller's own session; another's is `not_found`. */
  session(sessionId: string): Session {
    return this.sessions.get(sessionId, this.owner.id);
  }

  /** The session whose events to follow: with its ticket, whoever holds it; without, its owner only. */
  following(sessionId: string, ticket: string | undefined): Session {
    return ticket === undefined ? this.session(sessionId) : this.sessions.withEventsTicket(sessionId, ticket);
  }

  info(sessionId: string): SessionInfo {
    const session = this.session(sessionId);
    session.touch();
    return session.info();
  }

  close(sessionId: string): { success: true } {
    this.session(sessionId).close('closed by client');
    return { success: true };
  }
}
