/**
 * `npm run bench:browser`: the native messaging host against WebRTC, measured from inside the example extension in
 * real headless Chromium. Builds the extension, starts the dev server, loads the extension into a fresh profile,
 * installs the native host for that extension's id into the profile's NativeMessagingHosts/, opens bench.html and
 * runs its `runBench` (examples/extension/src/bench.ts):
 *
 *   round trip   `health`, one at a time: BENCH_ROUND_TRIPS (1000) per transport after 100 warm-up, in rounds that
 *                alternate between the two
 *   transfer     64 MiB less 4 KiB up, then back: WebRTC as an `echo` attachment; native as base64 in JSON `echo`
 *                data in two requests (the page's base64 work timed), answered in the host's 1 MiB fragments.
 *                The best of BENCH_TRANSFERS (3), in MB/s of payload both ways
 *
 * Prints a table and writes bench/results/browser-<date>.json. Every process and temp directory is cleaned up.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import type { BenchOptions, BenchResult } from '../examples/extension/src/bench.ts';
import { buildBrowser } from '../scripts/build-browser.ts';
import { launchWithExtension } from '../test/fixtures/chromium.ts';
import { startDevServer, withTimeout, type DevServer } from '../test/fixtures/dev-server.ts';

const root = path.resolve(import.meta.dirname, '..');
/** A benchmark sends far faster than a user: both transports run without the rate limits. */
const NO_RATE_LIMITS = { TABAGENT_SESSION_RATE_PER_MINUTE: '0', TABAGENT_MESSAGE_RATE_PER_SECOND: '0' };
const knob = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const options: Omit<BenchOptions, 'serverUrl'> = {
  roundTrips: knob('BENCH_ROUND_TRIPS', 1_000),
  warmUp: 100,
  transfers: knob('BENCH_TRANSFERS', 3),
};
const RUN_TIMEOUT_MS = 150_000;

const log = (message: string) => console.error(`[bench:browser] ${message}`);
const temps: string[] = [];
const tempDir = async (prefix: string) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
};

let server: DevServer | undefined;
let context: BrowserContext | undefined;
const pageLog: string[] = [];

async function run(): Promise<BenchResult> {
  log('building the extension');
  const { extensionDir } = await buildBrowser();
  const dataDir = await tempDir('tabagent-bench-server-data-');
  server = await startDevServer({ ...NO_RATE_LIMITS, TABAGENT_UPSTREAM_URL: 'off', TABAGENT_DATA_DIR: dataDir });
  log(`dev server on ${server.url}`);

  const profileDir = await tempDir('tabagent-bench-profile-');
  context = await launchWithExtension(profileDir, extensionDir);
  const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker'));
  const id = new URL(worker.url()).host; // chrome-extension://<id>/service-worker.js
  log(`extension ${id}`);

  // The host relays to the same server the page reaches over WebRTC: both transports end at one server.
  const install = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--install-native-host', '--dir', path.join(profileDir, 'NativeMessagingHosts')], {
    cwd: root,
    env: {
      ...process.env,
      ...NO_RATE_LIMITS,
      TABAGENT_NATIVE_ALLOWED_ORIGINS: `chrome-extension://${id}/`,
      TABAGENT_UPSTREAM_URL: 'off',
      TABAGENT_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
    },
    encoding: 'utf8',
  });
  if (install.status !== 0) throw new Error(`--install-native-host failed (${install.status}):\n${install.stderr}`);

  const page = await context.newPage();
  page.on('console', (message) => pageLog.push(`bench.html ${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageLog.push(`bench.html error: ${error.message}`));
  await page.goto(`chrome-extension://${id}/bench.html`);
  log(`running: ${options.roundTrips} round trips and ${options.transfers} transfers per transport`);
  const benchOptions: BenchOptions = { ...options, serverUrl: server.url };
  return withTimeout(
    page.evaluate((opts) => window.runBench(opts), benchOptions),
    RUN_TIMEOUT_MS,
    () => `bench.html's runBench; page log:\n${pageLog.join('\n')}`,
  );
}

async function cleanUp(): Promise<void> {
  await context?.close().catch(() => {});
  if (server && server.process.exitCode === null) {
    server.process.kill('SIGTERM');
    await withTimeout(server.exited, 10_000, 'the dev server to exit').catch(() => {
      server!.process.kill('SIGKILL');
      return server!.exited;
    });
  }
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
}

const pad = (cells: string[], widths: number[]) => cells.map((cell, i) => (i ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ');

function table(result: BenchResult): string {
  const { native, webrtc } = result;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const rows = [
    ['', 'RTT p50 (ms)', 'RTT p99 (ms)', '64 MiB up+back (MB/s)', 'first answer (ms)'],
    ['native host', String(native.round_trip.p50_ms), String(native.round_trip.p99_ms), String(native.transfer.MBps), String(native.first_answer_ms)],
    ['WebRTC', String(webrtc.round_trip.p50_ms), String(webrtc.round_trip.p99_ms), String(webrtc.transfer.MBps), String(webrtc.first_answer_ms)],
    [
      'WebRTC / native',
      ratio(webrtc.round_trip.p50_ms, native.round_trip.p50_ms),
      ratio(webrtc.round_trip.p99_ms, native.round_trip.p99_ms),
      ratio(webrtc.transfer.MBps, native.transfer.MBps),
      '',
    ],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => pad(row, widths)).join('\n');
}

let exitCode = 0;
const started = performance.now();
try {
  const result = await run();
  const output = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, ...result };
  console.log(`\n${table(result)}\n`);
  console.log(`transfer runs (MB/s): native ${result.native.transfer.runs.join(', ')}; WebRTC ${result.webrtc.transfer.runs.join(', ')}`);
  console.log(`  native: ${result.native.transfer.how}\n  WebRTC: ${result.webrtc.transfer.how}`);
  mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  const file = path.join(root, `bench/results/browser-${output.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(output, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(root, file)} (${((performance.now() - started) / 1000).toFixed(0)} s in all)`);
} catch (error) {
  exitCode = 1;
  console.error(error instanceof Error ? error.message : error);
  if (server) console.error(`dev server output:\n${server.output().slice(-4000)}`);
} finally {
  await cleanUp();
}
process.exit(exitCode);
