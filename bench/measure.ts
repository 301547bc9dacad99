/** Timing, percentiles and a process's CPU and memory as Linux reports them, for `npm run bench`. */
import { readdirSync, readFileSync } from 'node:fs';

export const MiB = 1024 * 1024;

export const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

export interface Percentiles {
  p50_ms: number;
  p99_ms: number;
  n: number;
}

export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), n: samples.length };
}

/** Runs `once` `times` times in a row, pushing each duration (ms) into `into`. */
export async function timeEach(times: number, once: () => Promise<unknown>, into: number[] = []): Promise<number[]> {
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    await once();
    into.push(performance.now() - start);
  }
  return into;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const TICKS_PER_SECOND = 100; // USER_HZ: what /proc/<pid>/stat counts in, on every Linux

/** User plus system CPU time of a process and all its threads (ms), from /proc/<pid>/stat. */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** Resident memory of a process (bytes), from /proc/<pid>/status. */
export function procRssBytes(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Threads of a process, as Linux lists them under /proc/<pid>/task. */
export function procThreads(pid: number | 'self'): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

/** Runs `tasks` with at most `limit` at once. */
export async function inBatches<T>(count: number, limit: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

/** `pid` and every process below it (children, their children, ...), from /proc/<pid>/stat's parent ids. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}
