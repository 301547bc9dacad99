import { randomBytes } from 'node:crypto';
import { Caller } from '../dispatch.ts';
import { AppError } from '../errors.ts';
import { log, redact } from '../log.ts';
import type { ReassemblyBudget } from '../protocol/reassembler.ts';
import type { ChannelLink } from '../protocol/link.ts';
import type { Identity } from '../protocol/handlers.ts';
import type { MessageRate } from '../security/rate-limit.ts';
import { EventLog, type EventListener } from './events.ts';
import { idOnNode } from './ids.ts';
import { Outbox } from './outbox.ts';

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

export interface SessionInfo {
  id: string;
  clientId: string;
  state: SessionState;
  createdAt: string;
  lastActivity: string;
  expiresAt: string;
  counts: { channels: number; requests: number; inFlight: number; iceCandidates: number; resumes: number };
}

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
}

/**
 * One client's session: its current peer connection and data channels, its in-flight requests, what it has
 * sent them (for a resume), and its signaling events. The peer can be replaced (a resume); the session, its
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
  readonly links = new Set<ChannelLink>();
  readonly createdAt = Date.now();
  lastActivity = this.createdAt;
  requests = 0;
  resumes = 0;
  remoteCandidates = 0;
  /** The current peer, its signaling events and its offer's deadline; a resume replaces all three. */
  pc!: RTCPeerConnection;
  events: EventLog;
  expiresAt = 0;
  /** The server's `tabagent` channel on the current peer: where resumable requests are answered. */
  primary: ChannelLink | undefined;
  /** Client ICE candidates that arrived before the answer: applied once the remote description is set. */
  earlyCandidates: RTCIceCandidateInit[] = [];
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
    this.events = this.newEventLog();
    this.caller = new Caller(options.id, options.identity, options.maxInFlight);
    this.messageRate = options.messageRate;
    this.reassembly = options.reassembly;
    this.outbox = new Outbox<ChannelLink>(deliverIgnoringClosed(options.id), {
      maxBytes: options.resumeBufferBytes,
      retentionMs: options.resumeGraceMs,
    });
    this.pc = pc;
    this.expiresAt = expiresAt;
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
  setState(next: SessionState): void {
    if (next === this.current) return;
    if (!NEXT_STATES[this.current].includes(next)) {
      throw new AppError('conflict', `Session is ${this.current}; it cannot become ${next}`);
    }
    this.current = next;
    if (next === 'connected') this.connectedOnce = true;
    this.events.push({ kind: 'state', state: next });
    log.debug('session state', { session: redact(this.id), state: next });
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  /** ICE reported `disconnected`: it may recover; if it has not within `graceMs`, the peer is lost. */
  peerDisconnected(graceMs: number): void {
    if (this.disconnectTimer || this.closed) return;
    this.disconnectTimer = setTimeout(() => this.lose('peer connection lost'), graceMs);
    this.disconnectTimer.unref?.();
  }

  peerRecovered(): void {
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

  /** The peer failed while its offer was made (its peer process died): `pc` makes the offer instead. Not a resume. */
  retryOffer(pc: RTCPeerConnection): void {
    this.takePeer(pc, this.expiresAt);
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
    if (this.closed) throw new AppError('not_found', 'No such session (it may have expired or been closed)');
    clearTimeout(this.suspendTimer);
    this.suspendTimer = undefined;
    this.dropPeer();
    this.events.end();
    this.events = this.newEventLog();
    this.earlyCandidates = [];
    this.pc = pc;
    this.expiresAt = expiresAt;
    this.setState('waiting_for_answer');
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
      this.pc.close();
    } catch (error) {
      log.warn('closing a peer failed', { session: redact(this.id), error });
    }
  }
}

/** A send to a link that closed meanwhile: the outbox still holds the frame for a resume. */
function deliverIgnoringClosed(sessionId: string) {
  return (link: ChannelLink, { text, attachment }: { text: string; attachment?: Uint8Array }) => {
    const sent = attachment ? link.sendBinary(text, attachment) : link.sendText(text);
    sent.catch((error) => log.debug('frame not delivered', { session: redact(sessionId), error }));
  };
}
