/**
 * `npm run bench:startup`: how long the server takes from spawn to listening, and how much memory it holds idle
 * (the server plus its peer process), on a fresh data directory and again on the same one (warm). The server runs
 * as `npm start` runs it (`node dist/server.mjs`, built first from the sources), without an upstream. Beside the
 * warm server, a native host starts on the same data directory, as Chrome starts one per port: its spawn to the
 * first answer that needs the store (`list_documents`), and its RSS. Prints a table and the goals.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnNativeHost } from '../src/transports/native/client.ts';
import { builtPath } from '../src/paths.ts';
import { buildNode } from '../scripts/build-node.ts';
import { freePort } from '../test/fixtures/dev-server.ts';
import { procRssBytes, processTree, round, sleep } from './measure.ts';

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 3);
/** How long the server idles after it listens before its memory is read. */
const SETTLE_MS = Number(process.env.BENCH_STARTUP_SETTLE_MS ?? 3_000);
const GOAL_MS = 1_500;
/** The goals are in MB (10^6 bytes), as the issue that set them measured. */
const MB = 1e6;
const GOAL_MB = 200;
const root = path.resolve(import.meta.dirname, '..');

interface Start {
  listeningMs: number;
  serverMB: number;
  othersMB: number;
  /** A native host started beside this server (warm starts only). */
  host?: { answerMs: number; rssMB: number };
}

/** A native host on `dataDir`: spawn to its first answer from the store, then its RSS. */
async function hostBeside(dataDir: string): Promise<Start['host']> {
  const started = performance.now();
  const host = await spawnNativeHost({ env: { TABAGENT_DATA_DIR: dataDir, TABAGENT_UPSTREAM_URL: 'off', LOG_LEVEL: 'warn' } });
  try {
    const answer = await host.request({ action: 'list_documents' });
    if (answer.type !== 'documents') throw new Error(`the host answered without the store: ${JSON.stringify(answer)}`);
    const answerMs = performance.now() - started;
    await sleep(SETTLE_MS);
    return { answerMs, rssMB: processTree(host.pid).reduce((total, pid) => total + (procRssBytes(pid) || 0), 0) / MB };
  } finally {
    await host.close();
  }
}

/** One start: spawn, wait for "listening on", idle, read the RSS of the process tree, stop with SIGTERM. */
async function startOnce(dataDir: string, withHost = false): Promise<Start> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [builtPath('server')], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', TABAGENT_DATA_DIR: dataDir, TABAGENT_UPSTREAM_URL: 'off', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<number>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk;
      if (output.includes('listening on')) resolve(performance.now() - started);
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    void exited.then((code) => reject(new Error(`the server exited (${code}) before listening:\n${output}`)));
  });
  try {
    const listeningMs = await listening;
    await sleep(SETTLE_MS);
    const [server, ...others] = processTree(child.pid!);
    const sum = (pids: number[]) => pids.reduce((total, pid) => total + (procRssBytes(pid) || 0), 0) / MB;
    return { listeningMs, serverMB: sum([server]), othersMB: sum(others), host: withHost ? await hostBeside(dataDir) : undefined };
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    child.kill('SIGKILL');
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
await buildNode();
const fresh: Start[] = [];
const warm: Start[] = [];
for (let run = 0; run < RUNS; run++) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tabagent-startup-'));
  try {
    fresh.push(await startOnce(dataDir));
    warm.push(await startOnce(dataDir, true));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const row = (name: string, starts: Start[]) => {
  const total = starts.map((s) => s.serverMB + s.othersMB);
  return (
    `| ${name} | ${round(median(starts.map((s) => s.listeningMs)), 0)} (${starts.map((s) => round(s.listeningMs, 0)).join(', ')}) ` +
    `| ${round(median(starts.map((s) => s.serverMB)), 0)} | ${round(median(starts.map((s) => s.othersMB)), 0)} | ${round(median(total), 0)} |`
  );
};
console.log(`\nserver start, ${RUNS} runs each (median, then each run); RSS read ${SETTLE_MS} ms after listening\n`);
console.log('| data dir | spawn to listening (ms) | server RSS (MB) | peer process RSS (MB) | total RSS (MB) |');
console.log('| --- | --- | --- | --- | --- |');
console.log(row('fresh', fresh));
console.log(row('warm', warm));
const hosts = warm.map((s) => s.host!);
console.log(
  `\nnative host beside the warm server, same data directory: spawn to first answer from the store ` +
    `${round(median(hosts.map((h) => h.answerMs)), 0)} ms (${hosts.map((h) => round(h.answerMs, 0)).join(', ')}), ` +
    `RSS ${round(median(hosts.map((h) => h.rssMB)), 0)} MB`,
);
const slowest = Math.max(median(fresh.map((s) => s.listeningMs)), median(warm.map((s) => s.listeningMs)));
const heaviest = Math.max(...[...fresh, ...warm].map((s) => s.serverMB + s.othersMB));
console.log(`\n${slowest <= GOAL_MS ? 'PASS' : 'MISS'}  spawn to listening ≤ ${GOAL_MS} ms (median, fresh and warm): ${round(slowest, 0)} ms`);
console.log(`${heaviest <= GOAL_MB ? 'PASS' : 'MISS'}  idle RSS of the server and its peer process ≤ ${GOAL_MB} MB (every run): ${round(heaviest, 0)} MB`);
