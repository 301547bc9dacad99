import type { Config } from '../config.ts';
import type { Dispatcher } from '../dispatch.ts';
import { shutdownNotice } from '../protocol/events.ts';
import { AppError } from '../errors.ts';
import { idOnNode } from './ids.ts';
import { ANONYMOUS_IDENTITY, sameSecret } from '../security/auth.ts';
import type { Identity } from '../protocol/handlers.ts';
import { MessageRate, type SessionRate } from '../security/rate-limit.ts';
import { log, redact } from '../log.ts';
import { iceServersFor } from '../peer/ice-servers.ts';
import { createServerOffer } from '../peer/offer.ts';
import { ReassemblyBudget } from '../protocol/reassembler.ts';
import type { PeerFactory } from '../peer/factory.ts';
import type { Stats } from '../stats.ts';
import { serveChannel } from './serve.ts';
import { Session, type SessionOptions } from './session.ts';
import { normalizeCandidate, type CandidateInput } from '../protocol/candidates.ts';

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

/**
 * Client candidates per peer, held before the answer or applied after it; a real client sends a handful. Each
 * applied one makes ICE checks against every local candidate on the network thread that all sessions share: a
 * thousand on one session stalled every other session for seconds.
 */
const MAX_CANDIDATES = 64;
/** Peers an offer may go through when they fail while it is made (a peer process dying each time). */
const OFFER_ATTEMPTS = 3;
/** How long the links get to hand over the last answers before the peers close. */
const FLUSH_MS = 1_000;
/** An empty send buffer is not delivery: SCTP still holds the tail briefly, and closing drops it at the peer. */
const DELIVERY_MARGIN_MS = 100;

/** Owns every session: creation within limits, signaling steps, inactivity sweep, shutdown. */
export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly byResumeToken = new Map<string, Session>();
  private readonly perIp = new Map<string, number>();
  private readonly answering = new Set<Session>();
  /** Ended sessions the cluster's directory is still forgetting. */
  private readonly leavingCluster = new Map<string, Promise<void>>();
  /** Sessions whose offer is being made. */
  private readonly offering = new Set<Session>();
  /** Client candidates applied, or being applied, to each server peer (a resume's new peer starts at 0). */
  private readonly candidatesPerPeer = new WeakMap<RTCPeerConnection, number>();
  private readonly sweepTimer: ReturnType<typeof setInterval>;
  private created = 0;
  private accepting = true;

  constructor(
    private readonly config: Config,
    private readonly deps: ManagerDeps,
  ) {
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
      },
      pc,
      Date.now() + this.config.offerTtlMs,
    );
    this.sessions.set(id, session);
    this.byResumeToken.set(session.resumeToken, session);
    this.perIp.set(options.ip, (this.perIp.get(options.ip) ?? 0) + 1);
    this.created++;
    const offerSdp = await this.offer(session, options.trickle);
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
    const offerSdp = await this.offer(session, options.trickle);
    log.info('session resumed', { session: redact(session.id), resumes: session.resumes });
    return { session, offerSdp };
  }

  /**
   * Applies the client's answer and returns the server's candidates gathered so far (waiting, bounded, for the
   * first one), so a trickling client has them without a subscription. A second answer is a conflict; a bad SDP
   * leaves the session waiting, unless it broke the peer (then the session ends, see below).
   */
  async answer(id: string, sdp: string, owner?: string): Promise<RTCIceCandidateInit[]> {
    const session = this.get(id, owner);
    if (session.state !== 'waiting_for_answer' || this.answering.has(session)) {
      throw new AppError('conflict', `Session already has an answer (state ${session.state})`);
    }
    session.touch();
    this.answering.add(session);
    const { pc } = session;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (cause) {
      // libwebrtc parses an answer, then applies it. One that fails while being applied (ICE credentials, DTLS
      // role, fingerprint, BUNDLE) stays set as the remote description, and the peer then refuses every later
      // answer ("Session error"): the session could never connect. End it now, not when the offer expires. (The
      // peer may have failed, and so ended the session, before this rejection came: it is still this answer's fault.)
      const broken = session.pc === pc && pc.remoteDescription !== null;
      if (!broken && session.closed) throw notFound();
      if (session.pc !== pc) throw resumedMeanwhile();
      if (broken) session.lose('answer rejected');
      const message = `Answer SDP rejected: ${(cause as Error).message}${broken ? '; this offer can no longer be answered: ask for a new one' : ''}`;
      throw new AppError('invalid_request', message, { details: { field: 'answerSdp' }, cause });
    } finally {
      this.answering.delete(session);
    }
    if (session.closed) throw notFound();
    // A resume gave the session a new peer while this answer was applied to the old one: the new offer is unanswered.
    if (session.pc !== pc) throw resumedMeanwhile();
    session.setState('ice_gathering');
    const early = session.earlyCandidates.splice(0);
    const applied = early.map((candidate) =>
      this.applyCandidate(session, candidate).catch((error) => log.debug('early candidate rejected', { session: redact(id), error })),
    );
    await Promise.all(applied);
    if (session.events.candidates().length === 0 && session.pc.iceGatheringState !== 'complete') {
      await session.events.next(this.config.iceGatheringTimeoutMs);
    }
    return session.events.candidates();
  }

  /** Adds a client ICE candidate; before the answer it is held, after it is applied. `null` ends the trickle. */
  async addIceCandidate(id: string, input: CandidateInput, owner?: string): Promise<void> {
    const session = this.get(id, owner);
    session.touch();
    const candidate = normalizeCandidate(input);
    if (!candidate) return;
    if (!session.pc.remoteDescription) {
      if (session.earlyCandidates.length >= MAX_CANDIDATES) {
        throw new AppError('conflict', `More than ${MAX_CANDIDATES} candidates before an answer`);
      }
      session.earlyCandidates.push(candidate);
      return;
    }
    await this.applyCandidate(session, candidate);
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
    for (const session of this.sessions.values()) {
      for (const link of session.links) link.sendText(notice).catch(() => {});
    }
    await dispatcher.drainOrCancel(graceMs, () => [...this.sessions.values()].map((session) => session.caller));
    await Promise.all([...this.sessions.values()].flatMap((s) => [...s.links].map((link) => link.flush(FLUSH_MS))));
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

  /**
   * Makes the session's current peer's offer, with the server's `tabagent` channel served. A peer that fails
   * meanwhile (its peer process died, or hung and was killed) is replaced and the offer made again: the client
   * only sees it take longer.
   */
  private async offer(session: Session, trickle?: boolean): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const { pc } = session;
      this.watchPeer(session, pc);
      this.offering.add(session);
      try {
        const offer = await createServerOffer(pc, { trickle: trickle === true, gatheringTimeoutMs: this.config.iceGatheringTimeoutMs });
        if (session.closed) throw new AppError('shutting_down', 'Session closed while its offer was made');
        if (session.pc !== pc) throw new AppError('conflict', 'Session was resumed again while this offer was made');
        if (pc.connectionState === 'failed') throw new PeerFailed();
        this.serve(session, offer.channel, true);
        return offer.sdp;
      } catch (error) {
        const failed = session.pc === pc && !session.closed && pc.connectionState === 'failed';
        if (failed && attempt < OFFER_ATTEMPTS) {
          log.warn('the peer failed while its offer was made; making it again on a new one', { session: redact(session.id), attempt });
          try {
            session.retryOffer(this.newPeer());
            continue;
          } catch (refused) {
            error = refused;
          }
        }
        if (session.pc === pc) session.lose('offer failed');
        if (error instanceof AppError) throw error;
        if (failed) throw new AppError('server_busy', 'The server\'s WebRTC peers kept failing while the offer was made; try again shortly', { cause: error });
        log.error('could not create an offer', { session: redact(session.id), error });
        throw new AppError('internal', 'Could not create a WebRTC offer', { cause: error });
      } finally {
        this.offering.delete(session);
      }
    }
  }

  /** Follows one peer of the session; once a resume replaces it, its late events are ignored. */
  private watchPeer(session: Session, pc: RTCPeerConnection): void {
    const current = () => session.pc === pc && !session.closed;
    pc.onicecandidate = ({ candidate }) => {
      if (current()) session.events.push({ kind: 'candidate', candidate: candidate ? candidate.toJSON() : null });
    };
    pc.onconnectionstatechange = () => {
      if (!current()) return;
      switch (pc.connectionState) {
        case 'connected':
          session.peerRecovered();
          if (session.state === 'ice_gathering') session.setState('connected');
          break;
        case 'disconnected':
          session.peerDisconnected(this.config.disconnectGraceMs);
          break;
        case 'failed':
          // While its offer is made, offer() replaces a failed peer.
          if (!this.offering.has(session)) session.lose('peer connection failed');
          break;
        case 'closed':
          session.lose('peer connection closed');
      }
    };
    pc.ondatachannel = ({ channel }) => (current() ? this.serve(session, channel, false) : channel.close());
  }

  private serve(session: Session, channel: RTCDataChannel, primary: boolean): void {
    if (session.closed) return channel.close();
    serveChannel(session, channel, {
      dispatcher: this.deps.dispatcher,
      stats: this.deps.stats,
      maxMessageBytes: this.config.maxMessageBytes,
      primary,
    });
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

  private async applyCandidate(session: Session, candidate: RTCIceCandidateInit): Promise<void> {
    const { pc } = session;
    // Counted before the await, so concurrent calls cannot all pass the check; a rejected one gives its place back.
    const taken = this.candidatesPerPeer.get(pc) ?? 0;
    if (taken >= MAX_CANDIDATES) throw new AppError('conflict', `More than ${MAX_CANDIDATES} candidates for one peer`, { details: { field: 'candidate' } });
    this.candidatesPerPeer.set(pc, taken + 1);
    try {
      await pc.addIceCandidate(candidate);
      session.remoteCandidates++;
    } catch (cause) {
      this.candidatesPerPeer.set(pc, (this.candidatesPerPeer.get(pc) ?? 1) - 1);
      if (session.closed) throw notFound();
      throw new AppError('invalid_request', `ICE candidate rejected: ${(cause as Error).message}`, {
        details: { field: 'candidate' },
        cause,
      });
    }
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

/** The peer failed while its offer was made. */
class PeerFailed extends Error {
  constructor() {
    super('The peer connection failed while its offer was made');
  }
}

/** Ownership: the one check behind every signaling step on an existing session. */
function ownedBy(session: Session, owner: string | undefined): boolean {
  return owner === undefined || session.owner === owner;
}

function resumedMeanwhile(): AppError {
  return new AppError('conflict', 'Session was resumed while this answer was applied; answer the new offer');
}

/** The same answer for a closed session and one that never existed: ids are capabilities, not to be probed. */
function notFound(): AppError {
  return new AppError('not_found', 'No such session (it may have expired or been closed)');
}
