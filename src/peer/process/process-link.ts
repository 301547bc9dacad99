/**
 * The server's side of the peer process: RemotePeer and RemoteChannel stand in for the backend's RTCPeerConnection
 * and RTCDataChannel, with the members the session layer uses, and forward to the peer process (host.ts). Their
 * state is read synchronously, as from the real objects: each event and reply from the process carries it.
 * When the process dies, every peer it held fails and every channel closes, as if the network had gone: sessions
 * suspend, and clients resume on a fresh process with nothing lost.
 *
 * What the process (peer-process.ts) and its stand-ins (remote-peer.ts, remote-channel.ts) know of each other. Each
 * side needs the other, so both depend on these interfaces instead, and the imports go round in no circle.
 */
import type { Command, PeerEvent, PeerMethod, PeerSnapshot } from './protocol.ts';

/** What a stand-in asks of the process that serves it: ids, commands, calls, and a place in its registry. */
export interface ProcessLink {
  /** The peers it holds by id, which its events and replies are routed to. */
  readonly peers: Map<number, PeerEvents>;
  /** The channels it holds by id, likewise. */
  readonly channels: Map<number, ChannelEvents>;
  nextId(): number;
  command(command: Command, payload?: Uint8Array | string): void;
  call(peer: number, method: PeerMethod, arg?: unknown): Promise<unknown>;
}

/** What the process tells a peer it holds. */
export interface PeerEvents {
  /** Read through the process too: the pool weighs a process's file descriptors by its peers' states (fd-budget.ts). */
  readonly connectionState: RTCPeerConnectionState;
  update(snapshot: PeerSnapshot): void;
  fire(event: Extract<PeerEvent, { ev: 'peer' }>): void;
  incoming(id: number, label: string, readyState: RTCDataChannelState): void;
  lost(): void;
}

/** What the process tells a channel it holds. */
export interface ChannelEvents {
  opened(): void;
  closed(): void;
  message(binary: boolean, payload: Uint8Array): void;
  buffered(sent: number, amount: number): void;
}
