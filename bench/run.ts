/**
 * `npm run bench`: every transport against the raw wrtc echo, measured in one run on one machine and reported as
 * ratios (absolute numbers on a shared 2-core machine mean little). The server side runs in a process of its own
 * (bench/server.ts; native hosts are processes of their own too), so its CPU time and memory are not the clients'.
 *
 *   round trip   a small request answered (`health`; the raw echo: a small message), in rounds that alternate
 *                between transports so that noise falls on all alike; server CPU over the same requests
 *   transfer     a 64 MiB payload up, then back (each transport's way: see its `transferNote`)
 *   setup        a new session (offer, or connection, or process) to its first answer
 *   memory       server-side memory per idle session at 1, 10 and 100 sessions, after a forced GC; the threads
 *                they add (server and peer processes)
 *   concurrency  the 100 sessions sending at once: paced, then back to back
 *   churn        for the data channel in its peer process, on each backend: cycles of connect, a fast stream and
 *                the client's pc.close() mid-stream; the peer processes (and servers) that crashed
 *
 * The data channel is measured as the server's defaults run it ("data channel", which the targets are about), with
 * its peers in the other place (its peer process, or its own process), and on node-datachannel in both.
 * Prints a table and the issue's targets (PASS or MISS), writes bench/results/<date>.json.
 * Knobs: BENCH_ROUND_TRIPS (10000), BENCH_SETUPS (20), BENCH_NATIVE_SETUPS (5), BENCH_TRANSFERS (3),
 * BENCH_SESSIONS (100), BENCH_LOAD_MS (3000, after BENCH_LOAD_WARM_UP_MS, 1000, unmeasured), BENCH_CHURN_CYCLES (200 per backend), BENCH_TRANSPORTS (comma-separated
 * keys, default all; the raw echo always runs), BENCH_SERVER_PROFILE (a directory for the server's CPU profile).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { loadConfig } from '../src/config.ts';
import { setLogLevel } from '../src/log.ts';
import { connectedChannelPair } from '../test/fixtures/wrtc-pair.ts';
import { churn } from './churn.ts';
import { inBatches, MiB, percentiles, round, sleep, timeEach, type Percentiles } from './measure.ts';
import { table, targetLines, targets, type LoadResult, type Results, type TransportResult } from './report.ts';
import { BenchServer } from './server-process.ts';
import { dataChannelTransport, variantEnv, type DataChannelVariant } from './transports/data-channel.ts';
import { nativeTransport } from './transports/native.ts';
import { rawTransport } from './transports/raw.ts';
import { trpcTransport } from './transports/trpc.ts';
import type { BenchSession, Transport } from './transports/types.ts';
import { websocketTransport } from './transports/websocket.ts';

setLogLevel('warn');
const knob = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUND_TRIPS = knob('BENCH_ROUND_TRIPS', 10_000);
const ROUNDS = 5;
const WARM_UP = 300;
const SETUPS = knob('BENCH_SETUPS', 20);
const NATIVE_SETUPS = knob('BENCH_NATIVE_SETUPS', 5);
const TRANSFERS = knob('BENCH_TRANSFERS', 3);
const SESSIONS = knob('BENCH_SESSIONS', 100);
const LOAD_MS = knob('BENCH_LOAD_MS', 3_000);
/** Unmeasured load first, as the round trips have their warm-up: the server's path compiled, its buffers grown. */
const LOAD_WARM_UP_MS = knob('BENCH_LOAD_WARM_UP_MS', 1_000);
const CHURN_CYCLES = knob('BENCH_CHURN_CYCLES', 200);
/** Paced load: each session sends a request, waits for its answer, then pauses this long (uniformly drawn). */
const PAUSE_MS: [number, number] = [50, 150];
/** 64 MiB less room for a message's own header, so that every transport's message stays within the default 64 MiB cap. */
const PAYLOAD_BYTES = 64 * MiB - 4096;
const OPEN_AT_ONCE = 10;

const config = loadConfig(process.env);
/** The data channel as the server's defaults run it, then each placement and backend explicitly. */
const variants: (DataChannelVariant & { churn?: boolean })[] = [
  { churn: true },
  { peerProcess: config.peerProcesses === 0, churn: config.peerProcesses === 0 },
  { backend: 'node-datachannel', peerProcess: true, churn: true },
  { backend: 'node-datachannel', peerProcess: false },
];
/**
 * Every transport, in the table's order; each gets the server it is measured against (started with `env`).
 * `churn`: also put through the abrupt-close churn (a peer process's crash is counted; a crash of peers in the
 * server ends the server, and the churn says so).
 */
const makers: { env?: Record<string, string>; churn?: boolean; make: (server: BenchServer) => Transport<any> }[] = [
  { make: rawTransport },
  ...variants.map(({ churn, ...variant }) => ({ env: variantEnv(variant), churn, make: (server: BenchServer) => dataChannelTransport(server, variant) })),
  { make: nativeTransport },
  { make: websocketTransport },
  { make: (server) => trpcTransport(server, config.maxMessageBytes) },
];
const only = process.env.BENCH_TRANSPORTS?.split(',');
/** One server per distinct environment, shared by the transports measured against it. */
const servers = new Map<string, BenchServer>();
for (const { env = {} } of makers) {
  const key = JSON.stringify(env);
  if (!servers.has(key)) servers.set(key, await BenchServer.start(env));
}
const chosen = makers
  .map((maker) => ({ ...maker, transport: maker.make(servers.get(JSON.stringify(maker.env ?? {}))!) }))
  .filter(({ transport: t }) => t.key === 'raw' || !only || only.includes(t.key));
const transports = chosen.map(({ transport }) => transport);
const log = (message: string) => console.log(`[${(performance.now() / 1000).toFixed(1)} s] ${message}`);

// Round trips and CPU: one session per transport, requests in alternating rounds.
log('round trips');
const mains = new Map<Transport, BenchSession>();
for (const transport of transports) mains.set(transport, await transport.open());
const samples = new Map<Transport, number[]>(transports.map((t) => [t, []]));
const cpuMs = new Map<Transport, number>(transports.map((t) => [t, 0]));
for (const transport of transports) await timeEach(WARM_UP, () => mains.get(transport)!.request());
for (let round = 0; round < ROUNDS; round++) {
  for (const transport of transports) {
    const session = mains.get(transport)!;
    const before = await transport.cpuMs(session);
    await timeEach(ROUND_TRIPS / ROUNDS, () => session.request(), samples.get(transport));
    cpuMs.set(transport, cpuMs.get(transport)! + (await transport.cpuMs(session)) - before);
  }
}
// For comparison with runs before this suite: both ends of the raw channel in this one process.
const pair = await connectedChannelPair();
pair.b.onmessage = ({ data }) => pair.b.send(data);
let echoed: () => void = () => {};
pair.a.onmessage = () => echoed();
const inProcess = percentiles(
  await timeEach(2000, () => new Promise<void>((resolve) => ((echoed = resolve), pair.a.send('{"action":"health","request_id":"1"}')))),
);
pair.close();

// Transfers: the best of BENCH_TRANSFERS, after a quarter-size one that is not timed (SCTP's congestion window
// starts small on each association and grows with bulk traffic, which small round trips do not bring).
log('transfers');
const payload = new Uint8Array(PAYLOAD_BYTES).map((_, i) => i);
const transferMBps = new Map<Transport, number[]>();
for (let i = -1; i < TRANSFERS; i++) {
  for (const transport of transports) {
    const session = mains.get(transport)!;
    if (!session.transfer) continue;
    const bytes = i < 0 ? payload.subarray(0, PAYLOAD_BYTES / 4) : payload;
    const start = performance.now();
    await session.transfer(bytes);
    const MBps = round((2 * bytes.length) / 1e6 / ((performance.now() - start) / 1000), 1);
    if (i >= 0) transferMBps.set(transport, [...(transferMBps.get(transport) ?? []), MBps]);
  }
}

log('setups');
const setups = new Map<Transport, number[]>(transports.map((t) => [t, []]));
for (let i = 0; i < SETUPS; i++) {
  for (const transport of transports) {
    if (transport.key === 'native' && i >= NATIVE_SETUPS) continue;
    let session!: BenchSession;
    await timeEach(1, async () => (session = await transport.open()), setups.get(transport));
    await session.close();
  }
}

for (const session of mains.values()) await session.close();
for (const server of servers.values()) await server.stop();

// Memory per idle session, then the concurrency test on the 100 sessions. Each transport gets a server process
// of its own: memory that an earlier phase freed is handed back to the system slowly, and would blur a baseline.
const memory = new Map<string, { rss: Record<string, number | null>; heap: Record<string, number | null>; threads: TransportResult['threads'] }>();
const concurrent = new Map<string, TransportResult['concurrent']>();
const sessionCounts = [1, 10, SESSIONS];
for (const { env, make } of chosen) {
  const fresh = await BenchServer.start(env);
  const transport = make(fresh);
  log(`memory and concurrency: ${transport.label}`);
  const perSession = () => Object.fromEntries(sessionCounts.map((n) => [n, null])) as Record<string, number | null>;
  const result = { rss: perSession(), heap: perSession(), threads: { idle: null as number | null, added: perSession() } };
  // One session first, opened and closed, so that what the first one sets up for all (wrtc's threads) is not counted.
  await (await transport.open()).close();
  const sessions: BenchSession[] = [];
  const baseline = await transport.memory(sessions);
  result.threads.idle = baseline.threads ?? null;
  for (const count of transport.sessionCounts ?? sessionCounts) {
    sessions.push(...(await inBatches(count - sessions.length, OPEN_AT_ONCE, () => transport.open())));
    const now = await transport.memory(sessions);
    result.rss[count] = Math.round((now.rssBytes - baseline.rssBytes) / count);
    if (now.heapBytes !== undefined) result.heap[count] = Math.round((now.heapBytes - baseline.heapBytes!) / count);
    if (now.threads !== undefined) result.threads.added[count] = now.threads - baseline.threads!;
  }
  memory.set(transport.key, result);
  if (sessions.length === SESSIONS) {
    await load(sessions, PAUSE_MS, LOAD_WARM_UP_MS);
    const paced = await load(sessions, PAUSE_MS);
    const busy = await load(sessions);
    concurrent.set(transport.key, { sessions: SESSIONS, paced, back_to_back: busy });
  }
  await inBatches(sessions.length, OPEN_AT_ONCE, (i) => sessions[i].close());
  await fresh.stop();
}

// The abrupt-close churn, on a fresh server with the upstream double (for a fast stream) per backend.
const churned = new Map<string, Awaited<ReturnType<typeof churn>>>();
for (const { env, churn: churns, transport } of chosen) {
  if (!churns) continue;
  log(`abrupt-close churn: ${transport.label}, ${CHURN_CYCLES} cycles`);
  const fresh = await BenchServer.start({ ...env, BENCH_UPSTREAM: '1' });
  churned.set(transport.key, await churn(fresh, CHURN_CYCLES));
  await fresh.stop();
}

/** Every session sends requests for `ms`, one at a time each, with a pause after each answer when `pause` is given. */
async function load(sessions: BenchSession[], pause?: [number, number], ms = LOAD_MS): Promise<LoadResult> {
  const times: number[] = [];
  const end = performance.now() + ms;
  const pauseMs = () => (pause ? pause[0] + Math.random() * (pause[1] - pause[0]) : 0);
  await Promise.all(
    sessions.map(async (session) => {
      if (pause) await sleep(Math.random() * pause[1]); // not all at once
      while (performance.now() < end) {
        await timeEach(1, () => session.request(), times);
        if (pause) await sleep(pauseMs());
      }
    }),
  );
  return { ...percentiles(times), requests_per_s: Math.round(times.length / (ms / 1000)) };
}

const results: Results = {};
for (const transport of transports) {
  const runs = transferMBps.get(transport);
  results[transport.key] = {
    label: transport.label,
    round_trip: percentiles(samples.get(transport)!),
    cpu_ms_per_10k_requests: round((cpuMs.get(transport)! * 10_000) / ROUND_TRIPS, 0),
    transfer: runs ? { MBps: Math.max(...runs), runs, how: transport.transferNote } : { na: transport.transferNote },
    setup: percentiles(setups.get(transport)!) as Percentiles,
    memory_per_session_bytes: memory.get(transport.key)!.rss,
    heap_per_session_bytes: memory.get(transport.key)!.heap,
    threads: memory.get(transport.key)!.threads,
    ...(churned.get(transport.key) && { churn: churned.get(transport.key) }),
    ...(transport.sessionNote && { memory_note: transport.sessionNote }),
    ...(concurrent.get(transport.key) && { concurrent: concurrent.get(transport.key) }),
  };
}

const checked = targets(results);
const output = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  settings: { ROUND_TRIPS, SETUPS, NATIVE_SETUPS, TRANSFERS, SESSIONS, LOAD_MS, LOAD_WARM_UP_MS, PAUSE_MS, PAYLOAD_BYTES, CHURN_CYCLES },
  results,
  raw_in_process_pair_round_trip: inProcess,
  targets: checked,
};
console.log(`\n${table(results, sessionCounts)}`);
console.log(`\nratios in parentheses are to the raw wrtc echo; raw wrtc with both ends in one process: p50 ${inProcess.p50_ms} ms, p99 ${inProcess.p99_ms} ms`);
for (const transport of transports) {
  const note = 'na' in results[transport.key].transfer ? 'transfer n/a' : 'transfer';
  console.log(`  ${transport.label}: ${note}: ${transport.transferNote}${transport.sessionNote ? `; memory: ${transport.sessionNote}` : ''}`);
}
for (const [key, { errors }] of churned) if (errors.length) console.log(`  churn, ${results[key].label}: ${errors.join('; ')}`);
console.log(`\ntargets (data channel with the server's defaults, this run):\n${targetLines(checked)}`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/${output.date.slice(0, 10)}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(output, null, 2) + '\n');
console.log(`\nwrote ${file.pathname}`);
process.exit(0);
