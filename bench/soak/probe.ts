/**
 * What the soak's server process can see of itself: sessions, peers, requests, handles, timers, threads and
 * memory, its own and its peer processes' (where the server's wrtc peers live unless `peerProcesses` is 0).
 */
import { createHook } from 'node:async_hooks';
import { readdirSync, readFileSync } from 'node:fs';
import type { App } from '../../src/app.ts';

export const MiB = 1024 * 1024;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const round = (n: number) => Math.round(n * 10) / 10;

export interface Snapshot {
  sessions: number;
  suspended: number;
  peersOpen: number;
  /** Peer objects V8 has not collected yet (open ones included): a wrtc one keeps its native threads until then. */
  peersUncollected: number;
  inFlight: number;
  /** Handles, requests and ref'd timers keeping the event loop alive, sorted. */
  resources: string[];
  /** Every pending timer, unref'd ones included. */
  timers: number;
  threads: number;
  /** Open file descriptors (sockets, pipes, files). */
  fds: number;
  rssMiB: number;
  heapMiB: number;
  /** The peer processes, added up. */
  peerProcesses: { count: number; threads: number; fds: number; rssMiB: number };
}

// getActiveResourcesInfo() lists ref'd timers only; an unref'd one left behind would still hold what it closes over.
const timers = new Set<number>();
createHook({
  init: (id, type) => void (type === 'Timeout' && timers.add(id)),
  destroy: (id) => void timers.delete(id),
}).enable();

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('the soak measures after full collections: run node with --expose-gc');

/** Two full collections apart, so that wrtc's native side and FinalizationRegistry callbacks have caught up. */
export async function collect(): Promise<void> {
  gc!();
  await sleep(100);
  gc!();
  await sleep(10);
}

/** Linux lists a process's threads under /proc/<pid>/task, its descriptors under fd/, its memory in status. */
function proc(pid: number | string): { threads: number; fds: number; rssMiB: number } {
  try {
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { threads: readdirSync(`/proc/${pid}/task`).length, fds: readdirSync(`/proc/${pid}/fd`).length, rssMiB: round(rssKiB / 1024) };
  } catch {
    return { threads: 0, fds: 0, rssMiB: 0 }; // it exited meanwhile
  }
}

/** Async: a timer that has just fired is reported destroyed a turn of the loop later. */
export async function snapshot(app: App): Promise<Snapshot> {
  await new Promise((resolve) => setImmediate(resolve));
  const { heapUsed } = process.memoryUsage();
  const peerProcesses = { count: 0, threads: 0, fds: 0, rssMiB: 0 };
  for (const { pid } of app.peerProcesses?.processes ?? []) {
    if (pid === undefined) continue;
    const { threads, fds, rssMiB } = proc(pid);
    peerProcesses.count++;
    peerProcesses.threads += threads;
    peerProcesses.fds += fds;
    peerProcesses.rssMiB = round(peerProcesses.rssMiB + rssMiB);
  }
  return {
    sessions: app.sessions.size,
    suspended: app.sessions.summary().byState.suspended ?? 0,
    peersOpen: app.peers.open,
    peersUncollected: app.peers.uncollected,
    inFlight: app.dispatcher.inFlightCount,
    resources: process.getActiveResourcesInfo().sort(),
    timers: timers.size,
    ...proc('self'),
    heapMiB: round(heapUsed / MiB),
    peerProcesses,
  };
}

/** Polls until `done` holds of a fresh snapshot (collecting first when `withGc`); the last snapshot either way. */
export async function waitFor(
  app: App,
  done: (now: Snapshot) => boolean,
  { timeoutMs, withGc = false }: { timeoutMs: number; withGc?: boolean },
): Promise<{ ok: boolean; ms: number; last: Snapshot }> {
  const started = Date.now();
  for (;;) {
    if (withGc) await collect();
    const last = await snapshot(app);
    if (done(last)) return { ok: true, ms: Date.now() - started, last };
    if (Date.now() - started > timeoutMs) return { ok: false, ms: Date.now() - started, last };
    await sleep(withGc ? 400 : 50);
  }
}

/** What `now` holds beyond `baseline` (each name counted), e.g. ['TCPSocketWrap x2']; empty when nothing. */
export function extra(baseline: string[], now: string[]): string[] {
  const counts = new Map<string, number>();
  for (const name of now) counts.set(name, (counts.get(name) ?? 0) + 1);
  for (const name of baseline) counts.set(name, (counts.get(name) ?? 0) - 1);
  return [...counts].filter(([, n]) => n > 0).map(([name, n]) => (n > 1 ? `${name} x${n}` : name));
}
