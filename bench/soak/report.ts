/** What the soak's server process reports to its harness, and how the harness prints it. */
import type { SoakOptions } from './options.ts';
import type { Snapshot } from './probe.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ServerReport {
  options: SoakOptions;
  /** From the first cycle to the last. */
  elapsedMs: number;
  outcomes: { closed: number; aborted: number; killed: number; failed: number; errors: string[] };
  clientProcesses: number;
  /** Before the first cycle: the server idle, its peer processes started. */
  baseline: Snapshot;
  /** After the warm-up cycles, once everything had ended and been collected and the clients had gone. */
  warmup: Snapshot;
  /** Half-way between the warm-up and the last cycle, likewise. */
  middle: Snapshot;
  /** After the last cycle, likewise. */
  end: Snapshot;
  /** From the last cycle until everything had ended and been collected. */
  settleMs: number;
  /** How long after its client was killed each such session ended (the peer found gone, then the resume grace). */
  killedSessionsEndedMs: { p50: number; max: number; n: number };
  shutdownMs: number;
  /** What kept the event loop alive once the server had shut down (should be nothing but the IPC channel). */
  leftAfterShutdown: string[];
  checks: Check[];
}

export type ToHarness = { type: 'phase'; phase: string } | { type: 'report'; report: ServerReport };

export interface SoakResult {
  ok: boolean;
  report?: ServerReport;
  /** The server process's end: how, and how long after its report. */
  exit: { code: number | null; signal: string | null; afterReportMs?: number };
  checks: Check[];
}

export function format({ ok, report, exit, checks }: SoakResult): string {
  const lines: string[] = [];
  if (report) {
    const { options: o, outcomes, baseline, warmup, middle, end } = report;
    lines.push(
      '',
      `soak: ${o.cycles} cycles (${o.warmupCycles} warm-up), ${o.concurrency} at once, ${percent(o.killFraction)} killed and ` +
        `${percent(o.abruptFraction)} closed abruptly mid-stream; ` +
        `peers on ${o.peerBackend ?? 'the default backend'}${o.peerProcesses === 0 ? ', in the server' : ''}`,
      `  ran in ${(report.elapsedMs / 1000).toFixed(1)} s: ${outcomes.closed} closed, ${outcomes.aborted} closed their peer mid-stream, ` +
        `${outcomes.killed} killed mid-stream, ${outcomes.failed} failed; ${report.clientProcesses} client processes`,
      `  sessions of killed clients ended ${report.killedSessionsEndedMs.p50} ms (p50), ${report.killedSessionsEndedMs.max} ms (max) after the kill`,
      `  settled in ${report.settleMs} ms after the last cycle; shut down (streams running) in ${report.shutdownMs} ms; exited ${exit.afterReportMs ?? '?'} ms after`,
      row('', ['sessions', 'peers', 'uncoll.', 'flight', 'handles', 'timers', 'threads', 'fds', 'rss MiB', 'heap MiB', 'peer procs', 'threads', 'fds', 'rss MiB']),
      ...([['before 1st cycle', baseline], ['after warm-up', warmup], ['half-way', middle], ['end', end]] as const).map(([label, s]) =>
        row(label, [
          s.sessions, s.peersOpen, s.peersUncollected, s.inFlight, s.resources.length, s.timers, s.threads, s.fds, s.rssMiB, s.heapMiB,
          s.peerProcesses.count, s.peerProcesses.threads, s.peerProcesses.fds, s.peerProcesses.rssMiB,
        ]),
      ),
    );
  }
  lines.push('', ...checks.map((c) => `  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`), '', ok ? 'soak: PASS' : 'soak: FAIL');
  return lines.join('\n');
}

const row = (label: string, cells: (string | number)[]) => `  ${label.padEnd(17)}${cells.map((c) => String(c).padStart(c === 'peer procs' ? 11 : 9)).join('')}`;

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}
