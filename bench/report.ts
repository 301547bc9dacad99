/** The bench's table (every transport, with its ratio to the raw echo) and the targets, PASS or MISS. */
import type { ChurnResult } from './churn.ts';
import { round, type Percentiles } from './measure.ts';

export interface LoadResult extends Percentiles {
  requests_per_s: number;
}

export interface TransportResult {
  label: string;
  round_trip: Percentiles;
  cpu_ms_per_10k_requests: number;
  /** The best of the timed transfers (`runs`, MB/s: payload bytes both ways over the time). */
  transfer: { MBps: number; runs: number[]; how: string } | { na: string };
  setup: Percentiles;
  /** Server-side resident bytes per idle session, by number of sessions open; null where not measured. */
  memory_per_session_bytes: Record<string, number | null>;
  /** The same for the server's JS heap and buffers, where the server is the bench's own process. */
  heap_per_session_bytes: Record<string, number | null>;
  memory_note?: string;
  /** Threads of the server side (peer processes included) with no session open, and how many the sessions added. */
  threads: { idle: number | null; added: Record<string, number | null> };
  concurrent?: { sessions: number; paced: LoadResult; back_to_back: LoadResult };
  churn?: ChurnResult;
}

export type Results = Record<string, TransportResult>;

const LABEL_WIDTH = 46;
const CELL_WIDTH = 18;

type Cell = number | null | undefined;
type Row = [name: string, pick: (result: TransportResult) => Cell];

/** Rows of the table, each a name and how to read its value; rows no transport has are left out. */
function rows(results: Results, sessionCounts: number[]): Row[] {
  const n = sessionCounts[sessionCounts.length - 1];
  const concurrent = (pick: (c: NonNullable<TransportResult['concurrent']>) => number) => (r: TransportResult) =>
    r.concurrent ? pick(r.concurrent) : null;
  const all: Row[] = [
    ['round trip p50 (ms)', (r) => r.round_trip.p50_ms],
    ['round trip p99 (ms)', (r) => r.round_trip.p99_ms],
    ['64 MiB up, then back (MB/s)', (r) => ('MBps' in r.transfer ? r.transfer.MBps : null)],
    ['setup to first answer p50 (ms)', (r) => r.setup.p50_ms],
    ['server CPU per 10k requests (ms)', (r) => r.cpu_ms_per_10k_requests],
    ...sessionCounts.map((count): Row => [`memory per idle session @${count} (KiB)`, (r) => kib(r.memory_per_session_bytes[count])]),
    [`JS heap per idle session @${n} (KiB)`, (r) => kib(r.heap_per_session_bytes[n])],
    ['threads, no session (server + peer processes)', (r) => r.threads?.idle ?? null],
    ...sessionCounts.map((count): Row => [`threads added by ${count} sessions`, (r) => r.threads?.added[count] ?? null]),
    [`${n} sessions paced: p50 (ms)`, concurrent((c) => c.paced.p50_ms)],
    [`${n} sessions paced: p99 (ms)`, concurrent((c) => c.paced.p99_ms)],
    [`${n} sessions back to back: p50 (ms)`, concurrent((c) => c.back_to_back.p50_ms)],
    [`${n} sessions back to back: p99 (ms)`, concurrent((c) => c.back_to_back.p99_ms)],
    [`${n} sessions back to back: req/s`, concurrent((c) => c.back_to_back.requests_per_s)],
    ['abrupt-close churn: cycles', (r) => r.churn?.cycles ?? null],
    ['abrupt-close churn: peer process crashes', (r) => r.churn?.peer_process_crashes ?? null],
    ['abrupt-close churn: server crashes', (r) => (r.churn ? Number(r.churn.server_ended !== undefined) : null)],
    ['abrupt-close churn: failed cycles', (r) => r.churn?.failed ?? null],
  ];
  return all.filter(([, pick]) => Object.values(results).some((r) => pick(r) !== null));
}

export function table(results: Results, sessionCounts: number[]): string {
  const keys = Object.keys(results);
  const raw = results.raw;
  // A column is as wide as its label, so that long labels ("node-datachannel, peers in the server") stay apart.
  const widths = keys.map((key) => Math.max(CELL_WIDTH, results[key].label.length + 2));
  const lines = [''.padEnd(LABEL_WIDTH) + keys.map((key, i) => results[key].label.padStart(widths[i])).join('')];
  for (const [name, pick] of rows(results, sessionCounts)) {
    const base = raw ? pick(raw) : null;
    const cells = keys.map((key, i) => {
      const value = pick(results[key]);
      if (value === null || value === undefined) return 'n/a'.padStart(widths[i]);
      const ratio = key !== 'raw' && base ? ` (${formatRatio(value / base)})` : '';
      return `${formatNumber(value)}${ratio}`.padStart(widths[i]);
    });
    lines.push(name.padEnd(LABEL_WIDTH) + cells.join(''));
  }
  return lines.join('\n');
}

function kib(bytes: number | null | undefined): Cell {
  return bytes === null || bytes === undefined ? null : round(bytes / 1024, 1);
}

function formatNumber(value: number): string {
  if (Math.abs(value) >= 100) return String(Math.round(value));
  return String(round(value, Math.abs(value) >= 10 ? 1 : 2));
}

function formatRatio(ratio: number): string {
  return `${ratio >= 10 ? Math.round(ratio) : round(ratio, 2)}x`;
}

export interface Target {
  target: string;
  measured: string;
  pass: boolean;
}

/**
 * The issue's targets for the data channel in the server's default configuration, each a ratio to the raw echo of
 * the same run (throughput also has a floor of its own): round trip p50 within 1.5x and p99 within 2.5x, the 64 MiB
 * echo at least 0.8x and 50 MB/s, the 100 paced sessions' p99 within 1.5x, server CPU per request within 2x.
 */
export function targets(results: Results): Target[] {
  const raw = results.raw;
  const full = results.data_channel;
  if (!raw || !full) return [];
  const list: Target[] = [];
  const ratioTarget = (name: string, ours: number, floor: number, unit: string, holds: (ratio: number) => boolean) => {
    const ratio = ours / floor;
    list.push({ target: name, measured: `${formatNumber(ours)} vs ${formatNumber(floor)} ${unit} = ${formatRatio(ratio)}`, pass: holds(ratio) });
  };
  ratioTarget('round trip p50 within 1.5x raw', full.round_trip.p50_ms, raw.round_trip.p50_ms, 'ms', (r) => r <= 1.5);
  ratioTarget('round trip p99 within 2.5x raw', full.round_trip.p99_ms, raw.round_trip.p99_ms, 'ms', (r) => r <= 2.5);
  if ('MBps' in full.transfer && 'MBps' in raw.transfer) {
    ratioTarget('64 MiB echo at least 0.8x raw', full.transfer.MBps, raw.transfer.MBps, 'MB/s', (r) => r >= 0.8);
    list.push({ target: '64 MiB echo at least 50 MB/s', measured: `${formatNumber(full.transfer.MBps)} MB/s`, pass: full.transfer.MBps >= 50 });
  }
  if (full.concurrent && raw.concurrent) {
    const { sessions, paced } = full.concurrent;
    ratioTarget(`${sessions} sessions paced: p99 within 1.5x raw`, paced.p99_ms, raw.concurrent.paced.p99_ms, 'ms', (r) => r <= 1.5);
  }
  ratioTarget('server CPU per request within 2x raw', full.cpu_ms_per_10k_requests, raw.cpu_ms_per_10k_requests, 'ms/10k', (r) => r <= 2);
  return list;
}

export function targetLines(list: Target[]): string {
  const width = Math.max(...list.map((t) => t.target.length)) + 2;
  const measuredWidth = Math.max(...list.map((t) => t.measured.length)) + 2;
  return list.map((t) => `${t.target.padEnd(width)}${t.measured.padEnd(measuredWidth)}${t.pass ? 'PASS' : 'MISS'}`).join('\n');
}
