import type { Config, IceServer } from '../config.ts';
import { iceServersFor } from '../peer/ice-servers.ts';
import { AppError } from '../errors.ts';
import type { Identity } from '../protocol/handlers.ts';
import type { CandidateInput } from '../protocol/candidates.ts';
import type { NumberedEvent } from '../session/events.ts';
import { nodeOf } from '../session/ids.ts';
import type { SessionManager } from '../session/manager.ts';
import type { Session } from '../session/session.ts';
import type { SessionInfo } from '../session/state.ts';

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

/** The signaling operations another node performs for a session it holds (src/cluster/internal.ts). */
export type RemoteOperation = 'resume' | 'answer' | 'ice' | 'info' | 'close' | 'backlog';

/** The sessions of the other instances of a cluster (src/cluster/); absent on a single instance. */
export interface RemoteSessions {
  /** The node holding the session an id or resume token names, when that is another node than this one. */
  holder(id: string): string | undefined;
  /** Performs `operation` on `node` for `identity`; its answer, or the AppError it answered. */
  call<T>(node: string, operation: RemoteOperation, identity: Identity | undefined, args: object): Promise<T>;
  /** A session's events on `node` after `after`, then as they come, until its log ends or `signal` aborts. */
  follow(node: string, args: EventsArgs, identity: Identity | undefined, signal?: AbortSignal): AsyncIterable<NumberedEvent>;
}

export interface EventsArgs {
  sessionId: string;
  ticket?: string;
  after: number;
}

/**
 * The signaling operations, one implementation behind both the tRPC procedures and the REST routes, on behalf of
 * one identity (`as`): it owns the sessions it creates, and sees no one else's. Without an identity (a call that
 * came without a key), only `events` with the session's ticket is possible. In a cluster, an operation on a session
 * another node holds is performed there (`remote`): a client never needs to know which node it reached.
 */
export class Signaling {
  constructor(
    readonly sessions: SessionManager,
    private readonly config: Config,
    /** Not defaulted: `undefined` means no identity at all, never the anonymous one. */
    readonly identity: Identity | undefined,
    private readonly remote?: RemoteSessions,
  ) {}

  /** The same operations for `identity` (an API key's; everyone is anonymous without keys). */
  as(identity: Identity | undefined): Signaling {
    return new Signaling(this.sessions, this.config, identity, this.remote);
  }

  /** The same operations on this node's own sessions only: what another node asks of this one. */
  local(): Signaling {
    return new Signaling(this.sessions, this.config, this.identity);
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
    const holder = input.resumeToken && this.remote?.holder(input.resumeToken);
    if (holder) {
      const offer = await this.remote!.call<Omit<OfferResult, 'expiresAt'> & { expiresAt: string }>(holder, 'resume', identity, { ip, ...input });
      return { ...offer, expiresAt: new Date(offer.expiresAt) };
    }
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
    const holder = this.remote?.holder(sessionId);
    if (holder) return this.remote!.call(holder, 'answer', this.owner, { sessionId, answerSdp });
    const candidates = await this.sessions.answer(sessionId, answerSdp, this.owner.id);
    return { success: true, candidates };
  }

  async ice(sessionId: string, candidate: CandidateInput): Promise<{ success: true }> {
    const holder = this.remote?.holder(sessionId);
    if (holder) return this.remote!.call(holder, 'ice', this.owner, { sessionId, candidate });
    await this.sessions.addIceCandidate(sessionId, candidate, this.owner.id);
    return { success: true };
  }

  async info(sessionId: string): Promise<SessionInfo> {
    const holder = this.remote?.holder(sessionId);
    if (holder) return this.remote!.call(holder, 'info', this.owner, { sessionId });
    const session = this.session(sessionId);
    session.touch();
    return session.info();
  }

  async close(sessionId: string): Promise<{ success: true }> {
    const holder = this.remote?.holder(sessionId);
    if (holder) return this.remote!.call(holder, 'close', this.owner, { sessionId });
    this.session(sessionId).close('closed by client');
    // Its place in the cluster-wide limits is free once this answers: a client may open another at once.
    await this.sessions.forgotten(sessionId);
    return { success: true };
  }

  /**
   * The session's signaling events after `after`, then as they come, until its current peer's log ends or `signal`
   * aborts: for its owner, or (`ticket`) whoever holds its events ticket.
   */
  events(args: EventsArgs, signal?: AbortSignal): AsyncIterable<NumberedEvent> {
    const holder = this.remote?.holder(args.sessionId);
    if (holder) return this.remote!.follow(holder, args, this.identity, signal);
    return this.following(args.sessionId, args.ticket).events.follow(args.after, signal);
  }

  /** What a follower elsewhere starts from: the events kept so far after `after`, and whether the log has ended. */
  backlog(args: EventsArgs): { events: NumberedEvent[]; ended: boolean } {
    return this.following(args.sessionId, args.ticket).events.since(args.after);
  }

  /** The caller's own session; another's is `not_found`. */
  private session(sessionId: string): Session {
    return this.sessions.get(sessionId, this.owner.id);
  }

  /** The session whose events to follow: with its ticket, whoever holds it; without, its owner only. */
  private following(sessionId: string, ticket: string | undefined): Session {
    return ticket === undefined ? this.session(sessionId) : this.sessions.withEventsTicket(sessionId, ticket);
  }
}

/** The node another instance should ask about `id`, when it is not `self` (an id of this node, or of none). */
export function otherNode(id: string, self: string): string | undefined {
  const node = nodeOf(id);
  return node !== undefined && node !== self ? node : undefined;
}
