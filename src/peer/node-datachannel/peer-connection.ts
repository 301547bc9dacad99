import { PeerConnection, type DataChannel, type DescriptionType } from 'node-datachannel';
import { domError, invalidState } from '../dom-errors.ts';
import { DatachannelChannel } from './data-channel.ts';
import { nativeConfig } from './rtc-config.ts';

type Handler<E> = ((event: E) => void) | null;
type IceCandidate = RTCIceCandidateInit & { toJSON(): RTCIceCandidateInit };

/** libdatachannel says `in-progress` where W3C says `gathering`. */
const GATHERING: Record<string, RTCIceGatheringState> = { new: 'new', 'in-progress': 'gathering', complete: 'complete' };
/** libdatachannel prefixes its errors with the call that failed; the rest is the reason. */
const strip = (error: unknown) => (error instanceof Error ? error.message : String(error)).replace(/^libdatachannel error while [^:]*: /, '');

let peers = 0;

/**
 * A W3C RTCPeerConnection over libdatachannel's PeerConnection, with the members the session layer and the peer
 * process use, keeping the W3C contract where libdatachannel differs:
 * - descriptions are null until set (and after close), as the session layer reads them;
 * - candidates are `candidate:...` with sdpMid and sdpMLineIndex (libdatachannel's start `a=candidate:` and have
 *   a mid only), as Chrome and wrtc send and take them;
 * - `closed` only after `close()` (a remote close reads `failed`); then no event fires, and every method throws
 *   InvalidStateError;
 * - the end of gathering is the `icegatheringstatechange` to `complete` (no null candidate: libdatachannel reports
 *   its candidates after that change, and a null first would tell clients to expect no more);
 * - candidates are announced only once the remote description is set. libdatachannel 0.24.5 gives its ICE agent
 *   the remote description before it keeps it for the DTLS fingerprint check: a client that already knows our
 *   candidates can finish ICE in between, and its handshake then fails that check ("DTLS alert: unknown CA"; about
 *   one connection in thirty here). A client that learns them after our answer is kept cannot be that early.
 * libdatachannel has no separate createOffer: the offer is made and applied in one step, so `createOffer` applies it
 * and `setLocalDescription` with that offer then only confirms it.
 */
export class DatachannelPeerConnection {
  onicecandidate: Handler<{ candidate: IceCandidate | null }> = null;
  onicegatheringstatechange: Handler<Event> = null;
  onconnectionstatechange: Handler<Event> = null;
  ondatachannel: Handler<{ channel: DatachannelChannel }> = null;
  readonly #native: PeerConnection;
  #closed = false;
  /** Its channels not yet closed: closing the connection closes them all (see close()). */
  readonly #channels = new Set<DatachannelChannel>();
  /** Local candidates made before the remote description was set, announced once it is (see above). */
  #held: RTCIceCandidateInit[] | undefined = [];

  constructor(config: RTCConfiguration = {}) {
    const native = (this.#native = new PeerConnection(`tabagent-${++peers}`, nativeConfig(config)));
    // Each callback is registered whatever the user sets: node-datachannel frees them, which otherwise keep the
    // event loop alive, once the connection has closed.
    native.onLocalCandidate((line, mid) => {
      if (this.#closed) return;
      const init: RTCIceCandidateInit = { candidate: line.replace(/^a=/, ''), sdpMid: mid, sdpMLineIndex: mLineIndex(native.localDescription()?.sdp, mid) };
      if (this.#held) this.#held.push(init);
      else this.#announce(init);
    });
    native.onGatheringStateChange(() => this.#closed || this.onicegatheringstatechange?.(new Event('icegatheringstatechange')));
    native.onStateChange(() => this.#closed || this.onconnectionstatechange?.(new Event('connectionstatechange')));
    native.onSignalingStateChange(() => {});
    native.onIceStateChange(() => {});
    native.onLocalDescription(() => {});
    native.onDataChannel((channel) => {
      const wrapped = this.#track(channel);
      if (this.#closed || !this.ondatachannel) wrapped.close();
      else this.ondatachannel({ channel: wrapped });
    });
  }

  get localDescription(): RTCSessionDescriptionInit | null {
    return this.#closed ? null : description(this.#native.localDescription());
  }
  get remoteDescription(): RTCSessionDescriptionInit | null {
    return this.#closed ? null : description(this.#native.remoteDescription());
  }
  get iceGatheringState(): RTCIceGatheringState {
    return this.#closed ? 'complete' : (GATHERING[this.#native.gatheringState()] ?? 'new');
  }
  /** W3C keeps `closed` for a connection closed here; libdatachannel says it of one the remote side closed too. */
  get connectionState(): RTCPeerConnectionState {
    if (this.#closed) return 'closed';
    const state = this.#native.state() as RTCPeerConnectionState;
    return state === 'closed' ? 'failed' : state;
  }
  /** Once the remote description states it: before, libdatachannel reports its 64 KiB fallback, not the peer's size. */
  get sctp(): { maxMessageSize: number } | null {
    return this.remoteDescription ? { maxMessageSize: this.#native.maxMessageSize() } : null;
  }

  createDataChannel(label: string, init: RTCDataChannelInit = {}): DatachannelChannel {
    this.#open();
    const native = this.#native.createDataChannel(label, {
      unordered: init.ordered === false,
      ...(init.maxRetransmits != null && { maxRetransmits: init.maxRetransmits }),
      ...(init.maxPacketLifeTime != null && { maxPacketLifeTime: init.maxPacketLifeTime }),
      ...(init.protocol && { protocol: init.protocol }),
      ...(init.negotiated && { negotiated: true, id: init.id }),
    });
    return this.#track(native);
  }

  async createOffer(): Promise<RTCSessionDescriptionInit> {
    this.#open();
    if (this.#native.localDescription()?.type !== 'offer') this.#native.setLocalDescription('offer');
    return description(this.#native.localDescription())!;
  }

  async setLocalDescription(init?: RTCSessionDescriptionInit): Promise<void> {
    this.#open();
    const type = init?.type ?? 'offer';
    if (this.#native.localDescription()?.type === type) return;
    this.#native.setLocalDescription(type as DescriptionType);
  }

  async setRemoteDescription(init: RTCSessionDescriptionInit): Promise<void> {
    this.#open();
    try {
      this.#native.setRemoteDescription(init.sdp ?? '', init.type as DescriptionType);
    } catch (error) {
      throw domError('OperationError', strip(error));
    }
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const candidate of held) this.#announce(candidate);
  }

  /** An end-of-candidates marker (no candidate) needs nothing: libdatachannel keeps checking what it has. */
  async addIceCandidate(init?: RTCIceCandidateInit | null): Promise<void> {
    this.#open();
    if (!init?.candidate) return;
    const remote = this.#native.remoteDescription();
    if (!remote) throw invalidState('No remote description to add a candidate to');
    const mid = init.sdpMid ?? midAt(remote.sdp, init.sdpMLineIndex ?? 0);
    try {
      this.#native.addRemoteCandidate(init.candidate, mid);
    } catch (error) {
      throw domError('OperationError', strip(error));
    }
  }

  /**
   * Closes it and its channels at once; libdatachannel frees its native side here, not at a later collection. Every
   * channel then reads `closed` and fires `close`, as wrtc's do: the peer process frees a channel on that event.
   * libdatachannel calls back only a channel closed itself (never one that had not opened, when its connection
   * closes), and until then that channel's callbacks hold the event loop open: each is closed here too.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
    const channels = [...this.#channels];
    this.#channels.clear();
    // On a later turn, after the callbacks libdatachannel has already queued (which say the same): a channel closed
    // in the same turn as its connection can block this thread on libdatachannel's (see DatachannelChannel.close).
    setImmediate(() => {
      for (const channel of channels) {
        channel.release();
        channel.closed();
      }
    });
  }

  #track(native: DataChannel): DatachannelChannel {
    const channel = new DatachannelChannel(native, (gone) => this.#channels.delete(gone));
    this.#channels.add(channel);
    return channel;
  }

  #announce(init: RTCIceCandidateInit): void {
    if (!this.#closed) this.onicecandidate?.({ candidate: { ...init, toJSON: () => init } });
  }

  #open(): void {
    if (this.#closed) throw invalidState('The peer connection is closed');
  }
}

function description(native: { type: string; sdp: string } | null | undefined): RTCSessionDescriptionInit | null {
  return native ? { type: native.type as RTCSdpType, sdp: native.sdp } : null;
}

/** The SDP's media sections, each from its `m=` line. */
function sections(sdp: string | undefined): string[] {
  return (sdp ?? '').split(/\r?\n(?=m=)/).slice(1);
}

function mLineIndex(sdp: string | undefined, mid: string): number {
  const index = sections(sdp).findIndex((section) => section.split(/\r?\n/).some((line) => line.trim() === `a=mid:${mid}`));
  return Math.max(index, 0);
}

function midAt(sdp: string, index: number): string {
  return /^a=mid:(\S+)/m.exec(sections(sdp)[index] ?? '')?.[1] ?? '0';
}
