import type { Config } from '../config.ts';
import type { Dispatcher } from '../dispatch.ts';
import { AppError } from '../errors.ts';
import { log, redact } from '../log.ts';
import type { PeerFactory } from '../peer/factory.ts';
import { iceServersFor } from '../peer/ice-servers.ts';
import type { CandidateInput } from '../protocol/candidates.ts';
import { shutdownNotice } from '../protocol/events.ts';
import type { Identity } from '../protocol/handlers.ts';
import { ReassemblyBudget } from '../protocol/reassembler.ts';
import { ANONYMOUS_IDENTITY, sameSecret } from '../security/auth.ts';
import { MessageRate, type SessionRate } from '../security/rate-limit.ts';
import type { Stats } from '../stats.ts';
import { idOnNode } from './ids.ts';
import { notFound, Session, type SessionOptions, type SessionPeers } from './session.ts';

export interface ManagerDeps {
  createPeer: PeerFactory;
  dispatcher: Dispatcher;
  stats: Stats;
  /** New sessions per address, shared with the WebSocket endpoint. */
  sessionRate: SessionRate;
  /** With several instances on one database: the cluster's side of sessions (src/cluster/). */
  cluster?: ClusterHooks;
}

/** What the cluster needs of sessions: its limits over every node, its directory, and their events for other nodes. */
export interface ClusterHooks {
  /** Admits a new session into the cluster's directory, or throws the AppError of the cluster's limit it breaks. */
  admit(session: { id: string; ip: string; owner: string }): Promise<void>;
  /** A session admitted here has ended (or was refused after all); resolves once the directory forgot it. */
  closed(id: string): Promise<void>;
  events: SessionOptions['onEvents'];
}

/** How long the links get to hand over the last answers before the peers close. */
const FLUSH_MS = 1_000;
/** An empty send buffer is not delivery: SCTP still holds the tail briefly, and closing drops it at the peer. */
const DELIVERY_MARGIN_MS = 100;

/**
 * Holds every session: creation within limits (this instance's and the cluster's), lookup by id, resume token and
 * events ticket, the inactivity sweep, shutdown. Each session does its own signaling (session.ts).
 */
export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly byResumeToken = new Map<string, Session>();
  private readonly perIp = new Map<string, number>();
  /** Ended sessions the cluster's directory is still forgetting. */
  private readonly leavingCluster = new Map<string, Promise<void>>();
  private readonly sweepTimer: ReturnType<typeof setInterval>;
  private created = 0;
  private accepting = true;
  /** How every session makes, watches and serves its peers. */
  private readonly peers: SessionPeers;

  constructor(
    private readonly config: Config,
    private readonly deps: ManagerDeps,
  ) {
    this.peers = {
      create: () => this.newPeer(),
      dispatcher: deps.dispatcher,
      stats: deps.stats,
      maxMessageBytes: config.maxMessageBytes,
      disconnectGraceMs: config.disconnectGraceMs,
      iceGatheringTimeoutMs: config.iceGatheringTimeoutMs,
    };
    this.sweepTimer = setInterval(() => this.sweep(), config.cleanupIntervalMs);
    this.sweepTimer.unref?.();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Creates a session and its offer. The slot is taken before any await, so limits hold under concurrency. */
  async create(options: { clientId?: string; ip: string; trickle?: boolean; identity?: Identity }): Promise<{ session: Session; offerSdp: string }> {
    if (!this.accepting) throw new AppError('shutting_down', 'Server is shutting down; try again shortly');
    this.deps.sessionRate.admit(options.ip);
    this.admit(options.ip);
    const id = idOnNode(this.config.nodeId, 18);
    if (this.deps.cluster) {
      await this.deps.cluster.admit({ id, ip: options.ip, owner: (options.identity ?? ANONYMOUS_IDENTITY).id });
      // Others here may have taken a slot meanwhile: from here on nothing awaits until the session holds its own.
      try {
        this.admit(options.ip);
      } catch (refused) {
        void this.deps.cluster.closed(id);
        throw refused;
      }
    }

    const pc = this.newPeer();
    const session = new Session(
      {
        id,
        clientId: options.clientId ?? id,
        ip: options.ip,
        nodeId: this.config.nodeId,
        identity: options.identity ?? ANONYMOUS_IDENTITY,
        maxInFlight: this.config.maxInFlightPerSession,
        resumeGraceMs: this.config.resumeGraceMs,
        resumeBufferBytes: this.config.resumeBufferBytes,
        messageRate: new MessageRate({ perSecond: this.config.messageRatePerSecond, burst: this.config.messageBurst }),
        reassembly: new ReassemblyBudget(this.config.maxMessageBytes),
        onClosed: (s) => this.forget(s),
        onEvents: this.deps.cluster?.events,
        peers: this.peers,
      },
      pc,
      Date.now() + this.config.offerTtlMs,
    );
    this.sessions.set(id, session);
    this.byResumeToken.set(session.resumeToken, session);
    this.perIp.set(options.ip, (this.perIp.get(options.ip) ?? 0) + 1);
    this.created++;
    const offerSdp = await session.offer(options.trickle === true);
    log.info('session created', { session: redact(id), ip: options.ip, owner: session.owner });
    return { session, offerSdp };
  }

  /**
   * Gives the session that `resumeToken` names a new peer and offer (its id, requests and kept answers stay);
   * the old peer, if the server still had it, is closed. The client then answers as for a new session and
   * sends `resume` on the new `tabagent` channel.
   */
  async resume(resumeToken: string, options: { trickle?: boolean; owner?: string }): Promise<{ session: Session; offerSdp: string }> {
    if (!this.accepting) throw new AppError('shutting_down', 'Server is shutting down; try again shortly');
    const session = this.byResumeToken.get(resumeToken);
    if (!session || !ownedBy(session, options.owner)) {
      throw new AppError('not_found', 'Nothing to resume: the session ended or the server restarted; open a new one');
    }
    session.replacePeer(this.newPeer(), Date.now() + this.config.offerTtlMs);
    const offerSdp = await session.offer(options.trickle === true);
    log.info('session resumed', { session: redact(session.id), resumes: session.info().counts.resumes });
    return { session, offerSdp };
  }

  /** Applies the client's answer to session `id` (see `Session.answer`). */
  answer(id: string, sdp: string, owner?: string): Promise<RTCIceCandidateInit[]> {
    return this.get(id, owner).answer(sdp);
  }

  /** Adds a client ICE candidate to session `id` (see `Session.addCandidate`). */
  addIceCandidate(id: string, input: CandidateInput, owner?: string): Promise<void> {
    return this.get(id, owner).addCandidate(input);
  }

  /**
   * The session `id` names. With `owner`, only if that identity created it: another's session is as absent as
   * one that never existed. Without, any (the server's own use).
   */
  get(id: string, owner?: string): Session {
    const session = this.sessions.get(id);
    if (!session || !ownedBy(session, owner)) throw notFound();
    return session;
  }

  /** The session `id` names, for whoever holds its events ticket; a wrong ticket is as absent as a wrong id. */
  withEventsTicket(id: string, ticket: string): Session {
    const session = this.sessions.get(id);
    if (!session || !sameSecret(ticket, session.eventsTicket)) throw notFound();
    return session;
  }

  close(id: string, reason = 'closed by client'): void {
    this.get(id).close(reason);
  }

  /**
   * Ends offers that expired unanswered or answered but never connected (an answer without candidates, or another
   * session's: ICE or DTLS never completes, and nothing else would free the slot before the inactivity timeout),
   * closes sessions idle too long (requests in flight count as activity;
   * suspended ones end with their resume grace), and drops kept answers past their retention.
   */
  sweep(now = Date.now()): void {
    for (const session of this.sessions.values()) {
      session.outbox.prune(now);
      if (session.state === 'waiting_for_answer' && now > session.expiresAt) session.lose('offer expired unanswered');
      else if (session.state === 'ice_gathering' && now > session.expiresAt) session.lose('answered, but never connected in time');
      else if (!session.suspended && now - session.lastActivity > this.config.inactivityTimeoutMs && session.caller.inFlight.size === 0) {
        session.close('inactive');
      }
    }
  }

  /**
   * Graceful shutdown: refuse new sessions and requests, tell every channel, let in-flight requests finish
   * within `graceMs`, cancel the rest with `shutting_down`, deliver their answers, close every peer.
   */
  async shutdown(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.accepting = false;
    clearInterval(this.sweepTimer);
    const { dispatcher } = this.deps;
    dispatcher.stopAccepting();
    const notice = JSON.stringify(shutdownNotice(graceMs));
    for (const session of this.sessions.values()) session.notify(notice);
    await dispatcher.drainOrCancel(graceMs, () => [...this.sessions.values()].map((session) => session.caller));
    await Promise.all([...this.sessions.values()].map((session) => session.flush(FLUSH_MS)));
    if (this.sessions.size > 0) await new Promise((resolve) => setTimeout(resolve, DELIVERY_MARGIN_MS));
    for (const session of [...this.sessions.values()]) session.close('server shutting down');
  }

  summary(): { active: number; created: number; max: number; byState: Record<string, number> } {
    const byState: Record<string, number> = {};
    for (const { state } of this.sessions.values()) byState[state] = (byState[state] ?? 0) + 1;
    return { active: this.sessions.size, created: this.created, max: this.config.maxSessions, byState };
  }

  /** The server's side of a session: the configured STUN/TURN servers, TURN with fresh credentials. */
  private newPeer(): RTCPeerConnection {
    return this.deps.createPeer({ iceServers: iceServersFor(this.config, 'tabagent-server').iceServers });
  }

  /** Makes room by closing the longest-suspended session that `match`es; false when there is none. */
  private evictSuspended(match: (session: Session) => boolean): boolean {
    let oldest: Session | undefined;
    for (const session of this.sessions.values()) {
      if (session.suspended && match(session) && (!oldest || session.lastActivity < oldest.lastActivity)) oldest = session;
    }
    oldest?.close('replaced by a new session (limit reached)');
    return oldest !== undefined;
  }

  /** Whether this instance takes a new session from `ip` now; throws the AppError that refuses it. */
  private admit(ip: string): void {
    if (!this.accepting) throw new AppError('shutting_down', 'Server is shutting down; try again shortly');
    if (this.sessions.size >= this.config.maxSessions && !this.evictSuspended(() => true)) {
      throw new AppError('server_busy', `Server has its maximum of ${this.config.maxSessions} sessions; try again later`);
    }
    if ((this.perIp.get(ip) ?? 0) >= this.config.maxSessionsPerIp && !this.evictSuspended((s) => s.ip === ip)) {
      throw new AppError('session_limit', `This address already has ${this.config.maxSessionsPerIp} sessions; close one first`);
    }
  }

  /** Resolves once the cluster no longer counts the ended session `id` (at once without a cluster). */
  async forgotten(id: string): Promise<void> {
    await this.leavingCluster.get(id);
  }

  private forget(session: Session): void {
    if (this.sessions.get(session.id) !== session) return;
    const leaving = this.deps.cluster?.closed(session.id);
    if (leaving) {
      this.leavingCluster.set(session.id, leaving);
      void leaving.finally(() => this.leavingCluster.delete(session.id));
    }
    this.sessions.delete(session.id);
    this.byResumeToken.delete(session.resumeToken);
    const left = (this.perIp.get(session.ip) ?? 1) - 1;
    if (left > 0) this.perIp.set(session.ip, left);
    else this.perIp.delete(session.ip);
  }
}

/** Ownership: the one check behind every signaling step on an existing session. */
function ownedBy(session: Session, owner: string | undefined): boolean {
  return owner === undefined || session.owner === owner;
}
