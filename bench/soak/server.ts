/**
 * The soak's server process (forked by bench/soak/harness.ts with --expose-gc): the app served as `npm start`
 * serves it (its peer processes started first; no store), against the upstream test double, both in this process
 * so that it can inspect itself. Client
 * processes (bench/soak/clients.ts) connect, ask, stream and close, or are SIGKILLed mid-stream. Then it checks
 * that sessions, peers, requests, handles, timers and threads came back to where they were and that memory stayed
 * within bounds, shuts down with streams running, and leaves without process.exit: the harness checks it ends.
 */
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { setLogLevel } from '../../src/log.ts';
import { serveApp } from '../../src/serve.ts';
import { startUpstream } from '../../test/fixtures/upstream.ts';
import { ClientPool, type Outcome } from './clients.ts';
import { Reclaims } from './reclaims.ts';
import type { SoakOptions } from './options.ts';
import { collect, extra, round, sleep, snapshot, waitFor, type Snapshot } from './probe.ts';
import type { Check, ServerReport, ToHarness } from './report.ts';

/** Short, so that the sessions of killed clients end soon after their peers are found gone. */
const RESUME_GRACE_MS = 500;
const DISCONNECT_GRACE_MS = 500;
/** Words (tokens) per streamed answer, 5 ms apart: a closing cycle's stream, and a long one that a kill cuts. */
const TOKEN_DELAY_MS = 5;
const WORDS = 20;
const KILL_WORDS = 400;
const KILL_AFTER_CHUNKS = 3;
/** An abrupt close's stream: a flood far longer than the cycle reads, so the server is sending at the close. */
const FLOOD_WORDS = 20_000;
const CLOSE_AFTER_CHUNKS = 50;

const options = JSON.parse(process.env.SOAK_OPTIONS ?? '{}') as SoakOptions;
let reported = false;
const tell = (message: ToHarness) => process.send?.(message);
// With the harness gone (killed, or its test timed out) no one reads this soak: stop rather than run on unseen.
process.once('disconnect', () => reported || process.exit(1));
const say = (line: string) => options.quiet || console.log(line);
setLogLevel((process.env.LOG_LEVEL as 'warn') ?? 'error');

tell({ type: 'phase', phase: 'starting' });
const upstream = await startUpstream({ tokenDelayMs: TOKEN_DELAY_MS });
const config = loadConfig({}, {
  port: 0,
  upstreamUrl: upstream.url,
  maxSessions: 10_000,
  maxSessionsPerIp: 10_000,
  sessionRatePerMinute: 0,
  messageRatePerSecond: 0,
  resumeGraceMs: RESUME_GRACE_MS,
  disconnectGraceMs: DISCONNECT_GRACE_MS,
  shutdownGraceMs: 1_000,
  ...(options.peerProcesses !== undefined && { peerProcesses: options.peerProcesses }),
  ...(options.peerBackend && { peerBackend: options.peerBackend }),
});
const app = createApp(config);
const server = await serveApp(app, { hostname: '127.0.0.1', port: 0 }).ready();
const url = new URL(server.url!).origin;
const pool = new ClientPool();
const reclaims = new Reclaims(app);
const outcomes = { closed: 0, aborted: 0, killed: 0, failed: 0, errors: [] as string[] };
const checks: Check[] = [];
const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

// The server's steady state, which every count comes back to: its peer processes started, as main.ts starts them.
await app.start();
const baseline = (await waitFor(app, (s) => s.sessions === 0 && s.peersUncollected === 0, { timeoutMs: 5_000, withGc: true })).last;
const started = Date.now();

/**
 * What cycle `i` ends with: kills and abrupt closes spread evenly at their shares, by where the golden-ratio
 * sequence (i·φ mod 1, evenly spread and never periodic) puts `i`.
 */
const ending = (i: number): 'kill' | 'abrupt' | 'close' => {
  const at = (i * 0.6180339887498949) % 1;
  return at < options.killFraction ? 'kill' : at < options.killFraction + options.abruptFraction ? 'abrupt' : 'close';
};
const planned = (kind: ReturnType<typeof ending>) => Array.from({ length: options.cycles }, (_, i) => ending(i)).filter((e) => e === kind).length;

async function runCycles(from: number, to: number): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const end = ending(i);
      const outcome: Outcome = await pool
        .cycle({
          type: 'cycle',
          cycle: i,
          url,
          words: end === 'abrupt' ? FLOOD_WORDS : end === 'kill' ? KILL_WORDS : WORDS,
          ...(end === 'kill' && { killAfterChunks: KILL_AFTER_CHUNKS }),
          ...(end === 'abrupt' && { fast: true, closeAfterChunks: CLOSE_AFTER_CHUNKS }),
        })
        .catch((error: Error) => ({ kind: 'failed', error: error.message }));
      if (outcome.kind === 'failed') {
        outcomes.failed++;
        if (outcomes.errors.length < 10) outcomes.errors.push(`cycle ${i}: ${outcome.error}`);
      } else outcomes[outcome.kind]++;
      if (outcome.kind === 'killed') reclaims.watch(outcome.sessionId);
      // The upstream double records every request; the soak reads none, and they would pass for a leak.
      upstream.requests.length = 0;
      const done = outcomes.closed + outcomes.aborted + outcomes.killed + outcomes.failed;
      if (done % 100 === 0) void progress(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
}

async function progress(done: number): Promise<void> {
  const now = await snapshot(app);
  say(
    `  ${String(done).padStart(5)} cycles  ${round((Date.now() - started) / 1000)} s  sessions ${now.sessions} (suspended ${now.suspended})` +
      `  peers ${now.peersOpen} open  in flight ${now.inFlight}  threads ${now.threads} + ${now.peerProcesses.threads}` +
      `  rss ${now.rssMiB} + ${now.peerProcesses.rssMiB} MiB`,
  );
}

/**
 * After a phase: every session, peer and request ends; V8 collects the closed peers (and wrtc frees their
 * threads: here, or in a peer process, whose own collections do it); the client processes exit; the handles and
 * timers are the baseline's again (idle keep-alive connections close on their servers' timeouts).
 */
async function settle(threads?: { server: number; peerProcesses: number }) {
  const ended = await waitFor(app, (s) => s.sessions === 0 && s.peersOpen === 0 && s.inFlight === 0, { timeoutMs: 60_000 });
  const fewer = (s: Snapshot) => !threads || (s.threads <= threads.server && s.peerProcesses.threads <= threads.peerProcesses);
  const collected = await waitFor(app, (s) => s.peersUncollected === 0 && fewer(s), { timeoutMs: 20_000, withGc: true });
  await pool.close();
  const idle = await waitFor(app, (s) => extra(baseline.resources, s.resources).length === 0 && s.timers <= baseline.timers, { timeoutMs: 15_000 });
  await collect();
  say(`  settled: ended in ${ended.ms} ms, collected in ${collected.ms} ms, idle in ${idle.ms} ms`);
  const { rssMiB, heapMiB, peerProcesses } = await snapshot(app);
  return { ms: ended.ms + collected.ms + idle.ms, last: { ...collected.last, rssMiB, heapMiB, peerProcesses, resources: idle.last.resources, timers: idle.last.timers } };
}

tell({ type: 'phase', phase: 'warm-up' });
say(
  `soak: ${options.cycles} cycles, ${options.concurrency} clients at once, ${Math.round(options.killFraction * 100)}% killed and ` +
    `${Math.round(options.abruptFraction * 100)}% closed abruptly mid-stream; ` +
    `peers on ${config.peerBackend}, ${config.peerProcesses ? `in ${config.peerProcesses} peer process(es)` : 'in the server'}; server ${url}`,
);
await runCycles(0, options.warmupCycles);
// Threads that wrtc and libuv start once, on first use, stay: the warm-up count is what later counts return to.
const warmup = (await settle()).last;

tell({ type: 'phase', phase: 'cycles' });
await runCycles(options.warmupCycles, options.cycles);
const elapsedMs = Date.now() - started;
tell({ type: 'phase', phase: 'settling' });
const slack = options.threadSlack;
const settled = await settle({ server: warmup.threads + slack, peerProcesses: warmup.peerProcesses.threads + slack });
const end = settled.last;

const cycles = outcomes.closed + outcomes.aborted + outcomes.killed + outcomes.failed;
const rss = (s: Snapshot) => round(s.rssMiB + s.peerProcesses.rssMiB);
const crashes = app.peerProcesses?.crashes ?? 0;
const left = [...extra(baseline.resources, end.resources), ...(end.timers > baseline.timers ? [`${end.timers - baseline.timers} timers`] : [])];
check('every cycle ran', cycles === options.cycles, `${cycles} of ${options.cycles}`);
check('no cycle failed', outcomes.failed === 0, `${outcomes.failed} failed${outcomes.errors.length ? `: ${outcomes.errors.join('; ')}` : ''}`);
check('clients killed mid-stream', outcomes.killed === planned('kill'), `${outcomes.killed} of ${planned('kill')}`);
check('clients that closed their peer mid-stream', outcomes.aborted === planned('abrupt'), `${outcomes.aborted} of ${planned('abrupt')}`);
check('no peer process crashed', crashes === 0, `${crashes} crashed (${end.peerProcesses.count} running)`);
check('sessions back to 0 (suspended included)', end.sessions === 0, `${end.sessions} left (${end.suspended} suspended)`);
check('open peers back to 0', end.peersOpen === 0, `${end.peersOpen} left`);
check('requests in flight back to 0', end.inFlight === 0, `${end.inFlight} left`);
check('closed peers collected', end.peersUncollected === 0, `${end.peersUncollected} not collected`);
check(
  'handles and timers back to the baseline',
  left.length === 0,
  left.length ? `left: ${left.join(', ')}` : `${baseline.resources.join(', ')}; ${baseline.timers} timers (unref'd included)`,
);
check(
  `threads back to the warm-up count (+${slack})`,
  end.threads <= warmup.threads + slack && end.peerProcesses.threads <= warmup.peerProcesses.threads + slack,
  `server ${baseline.threads} -> ${warmup.threads} -> ${end.threads}; peer processes ${baseline.peerProcesses.threads} -> ${warmup.peerProcesses.threads} -> ${end.peerProcesses.threads} (first cycle -> warm-up -> end)`,
);
check(
  `file descriptors back to the warm-up count (+${slack})`,
  end.fds <= warmup.fds + slack && end.peerProcesses.fds <= warmup.peerProcesses.fds + slack,
  `server ${baseline.fds} -> ${warmup.fds} -> ${end.fds}; peer processes ${baseline.peerProcesses.fds} -> ${warmup.peerProcesses.fds} -> ${end.peerProcesses.fds} (first cycle -> warm-up -> end)`,
);
check(
  `RSS within warm-up + ${options.rssBoundMiB} MiB (server and peer processes)`,
  rss(end) <= rss(warmup) + options.rssBoundMiB,
  `${rss(warmup)} -> ${rss(end)} MiB (${signed(rss(end) - rss(warmup))}; server ${warmup.rssMiB} -> ${end.rssMiB}, peer processes ${warmup.peerProcesses.rssMiB} -> ${end.peerProcesses.rssMiB})`,
);
check(`JS heap within warm-up + ${options.heapBoundMiB} MiB`, end.heapMiB <= warmup.heapMiB + options.heapBoundMiB, `${warmup.heapMiB} -> ${end.heapMiB} MiB (${signed(end.heapMiB - warmup.heapMiB)})`);

tell({ type: 'phase', phase: 'shutdown' });
const shutdown = await shutDownMidStream();
check('shutdown with streams running', shutdown.ok, shutdown.detail);

// A child process's handles close a loop turn or so after its exit event.
await sleep(100);
const report: ServerReport = {
  options,
  elapsedMs,
  outcomes,
  clientProcesses: pool.started,
  baseline,
  warmup,
  end,
  settleMs: settled.ms,
  killedSessionsEndedMs: reclaims.summary(),
  shutdownMs: shutdown.ms,
  leftAfterShutdown: process.getActiveResourcesInfo().sort(),
  checks,
};
reported = true;
tell({ type: 'report', report });

// Nothing should keep this process alive now; should something, say what before the harness kills it.
setTimeout(() => console.error(`soak server still running; keeping it alive: ${process.getActiveResourcesInfo().join(', ')}`), options.exitWithinMs).unref();
process.disconnect?.();

/**
 * Shuts the server down as main.ts does (app.close, then the HTTP server) while clients stream, one of them
 * killed just before, its peer not yet found gone: the moment wrtc has crashed at (one side closing as the other
 * sends, or is gone). Every stream must end, and every client with it.
 */
async function shutDownMidStream(): Promise<{ ok: boolean; ms: number; detail: string }> {
  const [killed, ...streams] = await Promise.all(
    Array.from({ length: options.concurrency + 1 }, (_, i) =>
      pool.streaming({ type: 'cycle', cycle: options.cycles + i, url, words: KILL_WORDS, killAfterChunks: KILL_AFTER_CHUNKS }),
    ),
  );
  await killed.kill();
  const streaming = await snapshot(app);
  const at = Date.now();
  await app.close();
  await server.close(true);
  await upstream.close();
  const ms = Date.now() - at;
  const ends = await Promise.all(streams.map((stream) => stream.finish()));
  await pool.close();
  const after = await snapshot(app);
  const running = options.concurrency + 1;
  const ok = streaming.inFlight === running && after.sessions === 0 && after.peersOpen === 0 && after.inFlight === 0 && after.peerProcesses.count === 0;
  const how = [...new Set(ends.map((end) => (end.kind === 'failed' ? end.error : end.kind)))].join('; ');
  return {
    ok,
    ms,
    detail:
      `${streaming.inFlight} streams running (1 of them for a client just killed); closed in ${ms} ms; the others' clients saw: ${how}; ` +
      `left ${after.sessions} sessions, ${after.peersOpen} peers, ${after.inFlight} requests, ${after.peerProcesses.count} peer processes`,
  };
}

function signed(n: number): string {
  return `${n >= 0 ? '+' : ''}${round(n)} MiB`;
}
