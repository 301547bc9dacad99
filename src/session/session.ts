import { randomBytes } from 'node:crypto';
import { Caller, type Dispatcher } from '../dispatch.ts';
import { AppError } from '../errors.ts';
import { log, redact } from '../log.ts';
import { createServerOffer } from '../peer/offer.ts';
import { normalizeCandidate, type CandidateInput } from '../protocol/candidates.ts';
import type { Identity } from '../protocol/handlers.ts';
import { DEFAULT_MAX_MESSAGE_SIZE, type ChannelLink } from '../protocol/link.ts';
import type { ReassemblyBudget } from '../protocol/reassembler.ts';
import type { MessageRate } from '../security/rate-limit.ts';
import type { Stats } from '../stats.ts';
import { serveChannel } from '../transports/data-channel/serve.ts';
import { PeerCandidates } from './candidates.ts';
import { EventLog, type EventListener } from './events.ts';
import { assertTransition, type SessionInfo, type SessionState } from './state.ts';
import { idOnNode } from './ids.ts';
import { Outbox } from './outbox.ts';

/** Peers an offer may go through when they fail while it is made (a peer process dying each time). */
const OFFER_ATTEMPTS = 3;

export interface SessionOptions {
  id: string;
  /** The node (instance) that holds it: its resume token names it too, for the others to route to. */
  nodeId: string;
  clientId: string;
  ip: string;
  /** The identity that created it: only it may signal on it or resume it, and its requests act as it. */
  identity: Identity;
  maxInFlight: number;
  /** How long a session whose peer is gone waits to be resumed; 0 closes it at once. */
  resumeGraceMs: number;
  /** Bound on the answers and chunks kept for a resume. */
  resumeBufferBytes: number;
  /** The budget every message on its data channels spends. */
  messageRate: MessageRate;
  /** What the unfinished fragmented messages of all its channels may hold: more channels must not mean more memory. */
  reassembly: ReassemblyBudget;
  /** The session ended (after `close`): forget it. */
  onClosed(session: Session): void;
  /** Told of its signaling events, whichever peer they are about (the cluster passes them to other nodes). */
  onEvents?(session: Session, change: Parameters<EventListener>[0]): void;
  /** How its peers are made, watched and served: the same for every session of a server. */
  peers: SessionPeers;
}

export interface SessionPeers {
  /** A new server-side peer (the configured STUN/TURN servers), when an offer must be made again. */
  create(): RTCPeerConnection;
  dispatcher: Dispatcher;
  stats: Stats;
  maxMessageBytes: number;
  /** How long ICE may stay `disconnected` before the peer counts as lost. */
  disconnectGraceMs: number;
  /** How long a non-trickle offer waits for gathering, and an answer for the server's first candidate. */
  iceGatheringTimeoutMs: number;
}

/**
 * One client's session: its current peer connection and data channels, its in-flight requests, what it has
 * sent them (for a resume), and its signaling events. It makes its peer's offer, applies the client's answer and
 * candidates, watches the peer and serves its channels. The peer can be replaced (a resume); the session, its
 * requests and its id stay.
 */
export class Session {
  readonly id: string;
  readonly clientId: string;
  readonly ip: string;
  /** The id of the identity that created it. */
  readonly owner: string;
  /** A secret for `webrtc.offer({ resumeToken })`: whoever holds it may give this session a new peer. */
  readonly resumeToken: string;
  /**
   * A secret that lets its holder follow this session's `webrtc.events` and nothing else: an EventSource cannot send
   * the API key in a header, and a key must never sit in a URL. It ends with the session.
   */
  readonly eventsTicket = randomBytes(18).toString('base64url');
  readonly caller: Caller;
  /** Spent by every message from the client; empty means `rate_limited` (the channel stays open). */
  readonly messageRate: MessageRate;
  /** Shared by the reassemblers of all its channels. */
  readonly reassembly: ReassemblyBudget;
  readonly outbox: Outbox<ChannelLink>;
  readonly createdAt = Date.now();
  private touchedAt = this.createdAt;
  private requests = 0;
  private resumes = 0;
  private remoteCandidates = 0;
  /** The current peer, its signaling events and its offer's deadline; a resume replaces all three. */
  private peer: RTCPeerConnection;
  private eventLog: EventLog;
  private offerExpiresAt: number;
  private readonly links = new Set<ChannelLink>();
  /** The server's `tabagent` channel on the current peer: where resumable requests are answered. */
  private primary: ChannelLink | undefined;
  /** The client's candidates for the current peer. */
  private candidates: PeerCandidates;
  private answering = false;
  private offering = false;
  private current: SessionState = 'waiting_for_answer';
  private connectedOnce = false;
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private suspendTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly options: SessionOptions;

  constructor(options: SessionOptions, pc: RTCPeerConnection, expiresAt: number) {
    this.options = options;
    this.id = options.id;
    this.clientId = options.clientId;
    this.ip = options.ip;
    this.owner = options.identity.id;
    this.resumeToken = idOnNode(options.nodeId, 24);
    this.eventLog = this.newEventLog();
    this.caller = new Caller(options.id, options.identity, options.maxInFlight);
    this.messageRate = options.messageRate;
    this.reassembly = options.reassembly;
    this.outbox = new Outbox<ChannelLink>(deliverIgnoringClosed(options.id), {
      maxBytes: options.resumeBufferBytes,
      retentionMs: options.resumeGraceMs,
    });
    this.peer = pc;
    this.candidates = this.candidatesFor(pc);
    this.offerExpiresAt = expiresAt;
  }

  /** The current peer. */
  get pc(): RTCPeerConnection {
    return this.peer;
  }

  /** The current peer's signaling events (its candidates, its state). */
  get events(): EventLog {
    return this.eventLog;
  }

  /** The current peer's data channels, served. */
  get channels(): ReadonlySet<ChannelLink> {
    return this.links;
  }

  /** When the current offer expires unanswered (or answered, unconnected). */
  get expiresAt(): number {
    return this.offerExpiresAt;
  }

  get state(): SessionState {
    return this.current;
  }

  get closed(): boolean {
    return this.current === 'disconnected';
  }

  get suspended(): boolean {
    return this.current === 'suspended';
  }

  /** The one place a session's state changes: checks the transition and tells subscribers. */
  private setState(next: SessionState): void {
    if (next === this.current) return;
    assertTransition(this.current, next);
    this.current = next;
    if (next === 'connected') this.connectedOnce = true;
    this.events.push({ kind: 'state', state: next });
    log.debug('session state', { session: redact(this.id), state: next });
  }

  touch(): void {
    this.touchedAt = Date.now();
  }

  /** When the client last did something (signaling, a message, an answer delivered). */
  get lastActivity(): number {
    return this.touchedAt;
  }

  /** ICE reported `disconnected`: it may recover; if it has not within the disconnect grace, the peer is lost. */
  private peerDisconnected(): void {
    const graceMs = this.options.peers.disconnectGraceMs;
    if (this.disconnectTimer || this.closed) return;
    this.disconnectTimer = setTimeout(() => this.lose('peer connection lost'), graceMs);
    this.disconnectTimer.unref?.();
  }

  private peerRecovered(): void {
    clearTimeout(this.disconnectTimer);
    this.disconnectTimer = undefined;
  }

  /**
   * The peer or its `tabagent` channel is gone. A session that was connected waits to be resumed (its requests
   * keep running, their answers are kept); one that never connected, or with no grace configured, closes.
   */
  lose(reason: string): void {
    if (this.closed || this.suspended) return;
    if (!this.connectedOnce || this.options.resumeGraceMs === 0) return this.close(reason);
    this.setState('suspended');
    this.dropPeer();
    this.suspendTimer = setTimeout(() => this.close(`not resumed within ${this.options.resumeGraceMs} ms (${reason})`), this.options.resumeGraceMs);
    this.suspendTimer.unref?.();
    log.info('session suspended', { session: redact(this.id), reason });
  }

  /** A resume: the old peer is closed here (this side closing is the safe order under wrtc) and `pc` takes over. */
  replacePeer(pc: RTCPeerConnection, expiresAt: number): void {
    this.takePeer(pc, expiresAt);
    this.resumes++;
  }

  /** Ends everything the session owns; safe to call more than once. */
  close(reason: string, cancellation = new AppError('cancelled', `Session closed: ${reason}`)): void {
    if (this.closed) return;
    this.setState('disconnected');
    clearTimeout(this.suspendTimer);
    this.caller.cancel(cancellation);
    this.dropPeer();
    this.outbox.clear();
    this.events.end();
    log.info('session closed', { session: redact(this.id), reason });
    this.options.onClosed(this);
  }

  /**
   * Makes the current peer's offer, with the server's `tabagent` channel served. A peer that fails meanwhile (its
   * peer process died, or hung and was killed) is replaced and the offer made again: the client only sees it take
   * longer.
   */
  async offer(trickle: boolean): Promise<string> {
    const { peers } = this.options;
    for (let attempt = 1; ; attempt++) {
      const pc = this.peer;
      this.watch(pc);
      this.offering = true;
      try {
        const offer = await createServerOffer(pc, { trickle, gatheringTimeoutMs: peers.iceGatheringTimeoutMs });
        if (this.closed) throw new AppError('shutting_down', 'Session closed while its offer was made');
        if (this.peer !== pc) throw new AppError('conflict', 'Session was resumed again while this offer was made');
        if (pc.connectionState === 'failed') throw new PeerFailed();
        this.serve(offer.channel, true);
        return offer.sdp;
      } catch (error) {
        const failed = this.peer === pc && !this.closed && pc.connectionState === 'failed';
        if (failed && attempt < OFFER_ATTEMPTS) {
          log.warn('the peer failed while its offer was made; making it again on a new one', { session: redact(this.id), attempt });
          try {
            this.takePeer(peers.create(), this.offerExpiresAt);
            continue;
          } catch (refused) {
            error = refused;
          }
        }
        if (this.peer === pc) this.lose('offer failed');
        if (error instanceof AppError) throw error;
        if (failed) throw new AppError('server_busy', 'The server\'s WebRTC peers kept failing while the offer was made; try again shortly', { cause: error });
        log.error('could not create an offer', { session: redact(this.id), error });
        throw new AppError('internal', 'Could not create a WebRTC offer', { cause: error });
      } finally {
        this.offering = false;
      }
    }
  }

  /**
   * Applies the client's answer and returns the server's candidates gathered so far (waiting, bounded, for the
   * first one), so a trickling client has them without a subscription. A second answer is a conflict; a bad SDP
   * leaves the session waiting, unless it broke the peer (then the session ends, see below).
   */
  async answer(sdp: string): Promise<RTCIceCandidateInit[]> {
    if (this.state !== 'waiting_for_answer' || this.answering) {
      throw new AppError('conflict', `Session already has an answer (state ${this.state})`);
    }
    this.touch();
    this.answering = true;
    const pc = this.peer;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (cause) {
      // libwebrtc parses an answer, then applies it. One that fails while being applied (ICE credentials, DTLS
      // role, fingerprint, BUNDLE) stays set as the remote description, and the peer then refuses every later
      // answer ("Session error"): the session could never connect. End it now, not when the offer expires. (The
      // peer may have failed, and so ended the session, before this rejection came: it is still this answer's fault.)
      const broken = this.peer === pc && pc.remoteDescription !== null;
      if (!broken && this.closed) throw notFound();
      if (this.peer !== pc) throw resumedMeanwhile();
      if (broken) this.lose('answer rejected');
      const message = `Answer SDP rejected: ${(cause as Error).message}${broken ? '; this offer can no longer be answered: ask for a new one' : ''}`;
      throw new AppError('invalid_request', message, { details: { field: 'answerSdp' }, cause });
    } finally {
      this.answering = false;
    }
    if (this.closed) throw notFound();
    // A resume gave the session a new peer while this answer was applied to the old one: the new offer is unanswered.
    if (this.peer !== pc) throw resumedMeanwhile();
    this.setState('ice_gathering');
    await this.candidates.applyHeld((error) => log.debug('early candidate rejected', { session: redact(this.id), error }));
    if (this.eventLog.candidates().length === 0 && this.peer.iceGatheringState !== 'complete') {
      await this.eventLog.next(this.options.peers.iceGatheringTimeoutMs);
    }
    return this.eventLog.candidates();
  }

  /** Adds a client ICE candidate; before the answer it is held, after it is applied. `null` ends the trickle. */
  async addCandidate(input: CandidateInput): Promise<void> {
    this.touch();
    const candidate = normalizeCandidate(input);
    if (candidate) await this.candidates.add(candidate);
  }

  /** Sends `text` on every channel of the current peer (a notice for all, such as shutdown's). */
  notify(text: string): void {
    for (const link of this.links) link.sendText(text).catch(() => {});
  }

  /** Resolves once every channel has handed over what it holds, or `timeoutMs` passed. */
  async flush(timeoutMs: number): Promise<void> {
    await Promise.all([...this.links].map((link) => link.flush(timeoutMs)));
  }

  // What the data channels it serves tell it (transports/data-channel/serve.ts).

  /** A request arrived and was accepted to run. */
  requestAccepted(): void {
    this.requests++;
  }

  channelOpened(): void {
    if (this.state === 'ice_gathering') this.setState('connected');
  }

  /** One of its channels closed: its requests are cancelled (the `tabagent` channel's stay, kept for a resume). */
  channelClosed(link: ChannelLink, label: string): void {
    const current = this.links.delete(link);
    this.outbox.detach(link);
    this.caller.cancel(`Data channel "${label}" closed`, (request) => request.origin === link);
    // A channel of a peer the session already replaced says nothing about the session.
    if (current && (link === this.primary || this.links.size === 0)) this.lose(`data channel "${label}" closed`);
  }

  info(): SessionInfo {
    return {
      id: this.id,
      clientId: this.clientId,
      state: this.current,
      createdAt: new Date(this.createdAt).toISOString(),
      lastActivity: new Date(this.lastActivity).toISOString(),
      expiresAt: new Date(this.expiresAt).toISOString(),
      counts: {
        channels: this.links.size,
        requests: this.requests,
        inFlight: this.caller.inFlight.size,
        iceCandidates: this.remoteCandidates,
        resumes: this.resumes,
      },
    };
  }

  private takePeer(pc: RTCPeerConnection, expiresAt: number): void {
    if (this.closed) throw notFound();
    clearTimeout(this.suspendTimer);
    this.suspendTimer = undefined;
    this.dropPeer();
    this.eventLog.end();
    this.eventLog = this.newEventLog();
    this.candidates = this.candidatesFor(pc);
    this.peer = pc;
    this.offerExpiresAt = expiresAt;
    this.setState('waiting_for_answer');
  }

  /** Follows one peer; once a resume replaces it, its late events are ignored. */
  private watch(pc: RTCPeerConnection): void {
    const current = () => this.peer === pc && !this.closed;
    pc.onicecandidate = ({ candidate }) => {
      if (current()) this.eventLog.push({ kind: 'candidate', candidate: candidate ? candidate.toJSON() : null });
    };
    pc.onconnectionstatechange = () => {
      if (!current()) return;
      switch (pc.connectionState) {
        case 'connected':
          this.peerRecovered();
          if (this.state === 'ice_gathering') this.setState('connected');
          break;
        case 'disconnected':
          this.peerDisconnected();
          break;
        case 'failed':
          // While its offer is made, offer() replaces a failed peer.
          if (!this.offering) this.lose('peer connection failed');
          break;
        case 'closed':
          this.lose('peer connection closed');
      }
    };
    pc.ondatachannel = ({ channel }) => (current() ? this.serve(channel, false) : channel.close());
  }

  private serve(channel: RTCDataChannel, primary: boolean): void {
    if (this.closed) return channel.close();
    const { dispatcher, stats, maxMessageBytes } = this.options.peers;
    const maxMessageSize = this.peer.sctp?.maxMessageSize || DEFAULT_MAX_MESSAGE_SIZE;
    const link = serveChannel(this, channel, { dispatcher, stats, maxMessageBytes, maxMessageSize, primary });
    this.links.add(link);
    if (primary) this.primary = link;
    if (channel.readyState === 'open') this.channelOpened();
  }

  private candidatesFor(pc: RTCPeerConnection): PeerCandidates {
    const rejected = (cause: unknown) => {
      if (this.closed) return notFound();
      return new AppError('invalid_request', `ICE candidate rejected: ${(cause as Error).message}`, { details: { field: 'candidate' }, cause });
    };
    return new PeerCandidates(pc, rejected, () => this.remoteCandidates++);
  }

  private newEventLog(): EventLog {
    const { onEvents } = this.options;
    return new EventLog(onEvents && ((change) => onEvents(this, change)));
  }

  /** Closes the current peer and its channels; requests that came on them are the caller's to cancel or keep. */
  private dropPeer(): void {
    this.peerRecovered();
    for (const link of this.links) {
      this.outbox.detach(link);
      link.close();
    }
    this.links.clear();
    this.primary = undefined;
    try {
      this.peer.close();
    } catch (error) {
      log.warn('closing a peer failed', { session: redact(this.id), error });
    }
  }
}

/** The peer failed while its offer was made. */
class PeerFailed extends Error {
  constructor() {
    super('The peer connection failed while its offer was made');
  }
}

function resumedMeanwhile(): AppError {
  return new AppError('conflict', 'Session was resumed while this answer was applied; answer the new offer');
}

/** The same answer for a closed session and one that never existed: ids are capabilities, not to be probed. */
export function notFound(): AppError {
  return new AppError('not_found', 'No such session (it may have expired or been closed)');
}

/** A send to a link that closed meanwhile: the outbox still holds the frame for a resume. */
function deliverIgnoringClosed(sessionId: string) {
  return (link: ChannelLink, { text, attachment }: { text: string; attachment?: Uint8Array }) => {
    const sent = attachment ? link.sendBinary(text, attachment) : link.sendText(text);
    sent.catch((error) => log.debug('frame not delivered', { session: redact(sessionId), error }));
  };
}
