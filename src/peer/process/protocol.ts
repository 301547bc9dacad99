/**
 * What the server and its peer process say to each other (carried by wire.ts). The server names peers and the
 * channels it creates with positive numbers; the peer process names the channels a client opens with negative
 * ones, so neither side waits for the other to pick an id.
 */

/** A peer's state as the peer process last saw it: enough for the server to read it synchronously. */
export interface PeerSnapshot {
  localDescription: RTCSessionDescriptionInit | null;
  remoteDescription: RTCSessionDescriptionInit | null;
  iceGatheringState: RTCIceGatheringState;
  connectionState: RTCPeerConnectionState;
  /** The SCTP transport's max message size, once there is one. */
  maxMessageSize: number | null;
}

export type PeerMethod = 'createOffer' | 'setLocalDescription' | 'setRemoteDescription' | 'addIceCandidate';

/** Server to peer process. `send` carries the message as the payload. */
export type Command =
  | { op: 'peer'; peer: number; config: RTCConfiguration }
  | { op: 'call'; peer: number; call: number; method: PeerMethod; arg?: unknown }
  | { op: 'channel'; peer: number; channel: number; label: string; init?: RTCDataChannelInit }
  | { op: 'send'; channel: number; binary: boolean }
  | { op: 'close-channel'; channel: number }
  | { op: 'close'; peer: number }
  /** Answered with `pong`: the server's heartbeat (heartbeat.ts). */
  | { op: 'ping' };

/** Peer process to server. `message` carries the message as the payload. */
export type PeerEvent =
  /**
   * The first event: the peer backend is loaded and commands are served. `fdLimit`: the process's open-file limit,
   * null where it cannot be read; its peers' file descriptors are budgeted against it (fd-budget.ts).
   */
  | { ev: 'ready'; fdLimit: number | null }
  /** Instead of `ready`: the backend cannot load here (`message` says why); the process then exits. */
  | { ev: 'unavailable'; message: string }
  | { ev: 'pong' }
  | { ev: 'reply'; call: number; peer: number; snapshot: PeerSnapshot; value?: unknown; error?: { name: string; message: string } }
  | { ev: 'peer'; peer: number; snapshot: PeerSnapshot; fire: 'icecandidate' | 'icegatheringstatechange' | 'connectionstatechange'; candidate?: RTCIceCandidateInit | null }
  | { ev: 'datachannel'; peer: number; channel: number; label: string; readyState: RTCDataChannelState }
  | { ev: 'open' | 'close'; channel: number }
  | { ev: 'message'; channel: number; binary: boolean }
  /**
   * `sent` bytes of the server's left the pipe into the channel, which now buffers at most `amount` (what it read
   * last, plus what went in since: host.ts reads the channel every few milliseconds only).
   */
  | { ev: 'buffered'; channel: number; sent: number; amount: number };
