/**
 * File descriptors are what a process full of wrtc peers runs out of first. An offer not yet answered holds up to
 * about a hundred (ICE sockets on every interface, gathered again for each peer; more when many gather at once),
 * a connected peer about fifteen. A process that reaches its open-file limit fails inside wrtc with EMFILE and
 * dies with every session in it. So new peers are refused (503 `server_busy`) while the peers a process holds
 * could use up its budget: its limit less what it holds besides peers, unless TABAGENT_PEER_FD_BUDGET says.
 *
 * Node and Deno both raise their soft RLIMIT_NOFILE to the hard limit as they start, so the limit read here is
 * already the most the process may have; only the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) moves it.
 */
import { readFileSync } from 'node:fs';
import { AppError } from '../errors.ts';
import type { PeerFactory } from './factory.ts';

/** What each peer is counted as, by how far it got (measured: docs/DESIGN.md, "File descriptors"). */
export const FDS_PER_PEER = { unconnected: 100, connected: 20 } as const;
/** What a process holds besides its peers: the runtime, its pipes, wrtc's shared threads and sockets. */
export const FD_RESERVE = 128;

/** The file descriptors `peers` are counted as holding. */
export function fdsHeldBy(peers: Iterable<{ readonly connectionState: RTCPeerConnectionState }>): number {
  let total = 0;
  for (const { connectionState } of peers) {
    total += connectionState === 'connected' || connectionState === 'disconnected' ? FDS_PER_PEER.connected : FDS_PER_PEER.unconnected;
  }
  return total;
}

/** What peers may hold in a process whose open-file limit is `limit`: `configured`, else the limit less the reserve. */
export function fdBudget(limit: number | null, configured?: number): number {
  if (configured !== undefined) return configured;
  return limit === null ? Infinity : Math.max(0, limit - FD_RESERVE);
}

/** Whether one more peer fits beside `peers` within `budget`. */
export function roomForPeer(peers: Iterable<{ readonly connectionState: RTCPeerConnectionState }>, budget: number): boolean {
  return fdsHeldBy(peers) + FDS_PER_PEER.unconnected <= budget;
}

/** The refusal of a peer past the budget: a 503 clients retry later. */
export function overBudget(budgets: number[]): AppError {
  return new AppError(
    'server_busy',
    `Server is at its file-descriptor budget for WebRTC peers (${budgets.join(', ')}; about ${FDS_PER_PEER.unconnected} per offer not yet answered); try again shortly`,
  );
}

/** `factory` (wrtc's peers in this process), refusing a peer the budget has no room for. */
export function withFdBudget(factory: PeerFactory, budget: number): PeerFactory {
  if (budget === Infinity) return factory;
  const open = new Set<RTCPeerConnection>();
  return (config) => {
    if (!roomForPeer(open, budget)) throw overBudget([budget]);
    const pc = factory(config);
    open.add(pc);
    const close = pc.close.bind(pc);
    pc.close = () => {
      open.delete(pc);
      close();
    };
    return pc;
  };
}

/** This process's open-file limit; null where it cannot be read (no /proc, as on macOS) or has none. */
export function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((entry) => entry.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : null;
  } catch {
    return null;
  }
}
