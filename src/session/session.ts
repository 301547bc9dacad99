import { Caller } from '../dispatch.ts';
import { AppError } from '../errors.ts';
import { log, redact } from '../log.ts';
import type { ChannelLink } from '../protocol/link.ts';
import { reclaimClosedPeers } from '../peer/reclaim.ts';
import { EventLog } from './events.ts';

export type SessionState = 'waiting_for_answer' | 'ice_gathering' | 'connected' | 'disconnected';

const NEXT_STATES: Record<SessionState, readonly SessionState[]> = {
  waiting_for_answer: ['ice_gathering', 'disconnected'],
  ice_gathering: ['connected', 'disconnected'],
  connected: ['disconnected'],
  disconnected: [],
};

export interface SessionInfo {
  id: string;
  clientId: string;
  state: SessionState;
  createdAt: string;
  lastActivity: string;
  expiresAt: string;
  counts: { channels: number; requests: number; inFlight: number; iceCandidates: number };
}

/** One client's peer connection, its data channels, its in-flight requests and its signaling events. */
export class Session {
  readonly caller: Caller;
  readonly events = new EventLog();
  readonly links = new Set<ChannelLink>();
  readonly createdAt = Date.now();
  lastActivity = this.createdAt;
  requests = 0;
  remoteCandidates = 0;
  /** Client ICE candidates that arrived before the answer: applied once the remote description is set. */
  readonly earlyCandidates: RTCIceCandidateInit[] = [];
  private current: SessionState = 'waiting_for_answer';
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly id: string,
    readonly clientId: string,
    readonly ip: string,
    readonly pc: RTCPeerConnection,
    readonly expiresAt: number,
    maxInFlight: number,
    private readonly onClosed: (session: Session) => void,
  ) {
    this.caller = new Caller(id, maxInFlight);
  }

  get state(): SessionState {
    return this.current;
  }

  get closed(): boolean {
    return this.current === 'disconnected';
  }

  /** The one place a session's state changes: checks the transition and tells subscribers. */
  setState(next: SessionState): void {
    if (next === this.current) return;
    if (!NEXT_STATES[this.current].includes(next)) {
      throw new AppError('conflict', `Session is ${this.current}; it cannot become ${next}`);
    }
    this.current = next;
    this.events.push({ kind: 'state', state: next });
    log.debug('session state', { session: redact(this.id), state: next });
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  /** ICE reported `disconnected`: it may recover; if it has not within the grace period, close. */
  peerDisconnected(graceMs: number): void {
    if (this.disconnectTimer || this.closed) return;
    this.disconnectTimer = setTimeout(() => this.close('peer connection lost'), graceMs);
    this.disconnectTimer.unref?.();
  }

  peerRecovered(): void {
    clearTimeout(this.disconnectTimer);
    this.disconnectTimer = undefined;
  }

  /** Ends everything the session owns; safe to call more than once. */
  close(reason: string, cancellation = new AppError('cancelled', `Session closed: ${reason}`)): void {
    if (this.closed) return;
    this.setState('disconnected');
    this.peerRecovered();
    this.caller.cancel(cancellation);
    for (const link of this.links) link.close();
    this.links.clear();
    try {
      this.pc.close();
    } catch (error) {
      log.warn('closing a peer failed', { session: redact(this.id), error });
    }
    this.events.end();
    reclaimClosedPeers();
    log.info('session closed', { session: redact(this.id), reason });
    this.onClosed(this);
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
      },
    };
  }
}
