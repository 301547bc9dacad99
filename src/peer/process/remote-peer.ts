/**
 * The server's stand-in for a peer connection in the peer process: what the session layer calls goes to the process
 * as commands, and what the process reports comes back as W3C events.
 */
import { invalidState } from '../dom-errors.ts';
import type { PeerEvents, ProcessLink } from './process-link.ts';
import type { PeerEvent, PeerMethod, PeerSnapshot } from './protocol.ts';
import { RemoteChannel } from './remote-channel.ts';

type Handler<E> = ((event: E) => void) | null;

/** The members of RTCPeerConnection the session layer uses, served by a peer process. */
export class RemotePeer implements PeerEvents {
  onicecandidate: Handler<{ candidate: (RTCIceCandidateInit & { toJSON(): RTCIceCandidateInit }) | null }> = null;
  onicegatheringstatechange: Handler<Event> = null;
  onconnectionstatechange: Handler<Event> = null;
  ondatachannel: Handler<{ channel: RemoteChannel }> = null;
  #state: PeerSnapshot = {
    localDescription: null,
    remoteDescription: null,
    iceGatheringState: 'new',
    connectionState: 'new',
    maxMessageSize: null,
  };
  /** Closed here: what the process reports afterwards no longer counts (a stack may report `closed` on its own). */
  #closed = false;
  readonly #id: number;
  readonly #host: ProcessLink;

  constructor(host: ProcessLink, config: RTCConfiguration) {
    this.#host = host;
    this.#id = host.nextId();
    host.peers.set(this.#id, this);
    host.command({ op: 'peer', peer: this.#id, config });
  }

  get localDescription() {
    return this.#state.localDescription;
  }
  get remoteDescription() {
    return this.#state.remoteDescription;
  }
  get iceGatheringState() {
    return this.#state.iceGatheringState;
  }
  get connectionState(): RTCPeerConnectionState {
    return this.#closed ? 'closed' : this.#state.connectionState;
  }
  get sctp(): { maxMessageSize: number } | null {
    return this.#state.maxMessageSize === null ? null : { maxMessageSize: this.#state.maxMessageSize };
  }

  createDataChannel(label: string, init?: RTCDataChannelInit): RemoteChannel {
    const channel = new RemoteChannel(this.#host, this.#host.nextId(), label, 'connecting');
    this.#host.command({ op: 'channel', peer: this.#id, channel: channel.id, label, init });
    return channel;
  }

  createOffer(): Promise<RTCSessionDescriptionInit> {
    return this.#call('createOffer') as Promise<RTCSessionDescriptionInit>;
  }
  async setLocalDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await this.#call('setLocalDescription', description);
  }
  async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await this.#call('setRemoteDescription', description);
  }
  async addIceCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    await this.#call('addIceCandidate', candidate);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.peers.delete(this.#id);
    this.#host.command({ op: 'close', peer: this.#id });
  }

  #call(method: PeerMethod, arg?: unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(invalidState('The peer connection is closed'));
    return this.#host.call(this.#id, method, arg);
  }

  /** From the peer process: */

  update(snapshot: PeerSnapshot): void {
    if (!this.#closed) this.#state = snapshot;
  }

  fire(event: Extract<PeerEvent, { ev: 'peer' }>): void {
    if (this.#closed) return;
    this.#state = event.snapshot;
    if (event.fire === 'icecandidate') {
      const init = event.candidate;
      this.onicecandidate?.({ candidate: init ? { ...init, toJSON: () => init } : null });
    }
    else if (event.fire === 'icegatheringstatechange') this.onicegatheringstatechange?.(new Event(event.fire));
    else this.onconnectionstatechange?.(new Event(event.fire));
  }

  incoming(id: number, label: string, readyState: RTCDataChannelState): void {
    const channel = new RemoteChannel(this.#host, id, label, readyState);
    if (this.ondatachannel) this.ondatachannel({ channel });
    else channel.close();
  }

  /** The process died: as a network failure would, the connection fails. */
  lost(): void {
    if (this.#closed) return;
    this.#state = { ...this.#state, connectionState: 'failed' };
    this.#host.peers.delete(this.#id);
    this.onconnectionstatechange?.(new Event('connectionstatechange'));
  }
}
