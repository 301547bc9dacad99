/**
 * `npm run bench`: the full stack against a raw wrtc data-channel echo, measured in the same run on the same
 * machine, reported as ratios (absolute times on a shared machine mean little). Round trips are measured in
 * alternating rounds so that warm-up and background noise fall on both sides alike.
 * Writes bench/results/<date>.json.
 *
 *   round trip   a small request answered (`echo`, `health`) vs a raw channel echoing one small message
 *   throughput   16 MiB up, then back: `echo` with a binary attachment vs raw 256 KiB messages each way
 *   setup        connect() (tRPC offer, answer, ICE, channel open) vs a raw in-process wrtc pair with trickle ICE
 */
import { writeFileSync } from 'node:fs';
import { connectedChannelPair, type ChannelPair } from '../test/fixtures/wrtc-pair.ts';
import { startServer } from '../test/fixtures/server.ts';

const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 2000);
const ROUNDS = 4;
const PAYLOAD_BYTES = 16 * 1024 * 1024;
const SETUPS = Number(process.env.BENCH_SETUPS ?? 20);
const HIGH_WATER = 1024 * 1024;

const round = (n: number) => Math.round(n * 1000) / 1000;
function summarize(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), n: samples.length };
}

async function time(times: number, once: () => Promise<unknown>, into: number[] = []): Promise<number[]> {
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    await once();
    into.push(performance.now() - start);
  }
  return into;
}

/** Raw echo: one side sends, the other sends each message straight back. */
function rawEcho(pair: ChannelPair) {
  pair.b.onmessage = ({ data }) => pair.b.send(data);
  let waiting: (() => void) | undefined;
  pair.a.onmessage = () => waiting?.();
  return () =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      pair.a.send('{"action":"echo","request_id":"1"}');
    });
}

/** The floor for bulk transfer: 256 KiB messages with the same backpressure rule, all up, then all back. */
async function rawTransfer(pair: ChannelPair): Promise<number> {
  const chunk = new Uint8Array(256 * 1024 - 64);
  const count = Math.ceil(PAYLOAD_BYTES / chunk.length);
  const pump = async (channel: RTCDataChannel) => {
    for (let i = 0; i < count; i++) {
      while (channel.bufferedAmount > HIGH_WATER) await new Promise((r) => setTimeout(r, 2));
      channel.send(chunk);
    }
  };
  const receiveAll = (channel: RTCDataChannel) =>
    new Promise<void>((resolve) => {
      let received = 0;
      channel.onmessage = () => {
        if (++received === count) resolve();
      };
    });
  const start = performance.now();
  const up = receiveAll(pair.b);
  await pump(pair.a);
  await up;
  const back = receiveAll(pair.a);
  await pump(pair.b);
  await back;
  return performance.now() - start;
}

const pair = await connectedChannelPair();
const server = await startServer({ maxSessionsPerIp: 1000 });
const client = await server.client();
const raw = rawEcho(pair);

const samples = { raw: [] as number[], echo: [] as number[], health: [] as number[] };
await time(200, raw);
await time(200, () => client.request('echo'));
for (let r = 0; r < ROUNDS; r++) {
  await time(ROUND_TRIPS / ROUNDS, raw, samples.raw);
  await time(ROUND_TRIPS / ROUNDS, () => client.request('echo'), samples.echo);
  await time(ROUND_TRIPS / ROUNDS, () => client.request('health'), samples.health);
}

const rawTransferMs = await rawTransfer(pair);
const payload = new Uint8Array(PAYLOAD_BYTES);
const start = performance.now();
const { attachment } = await client.call('echo', {}, { attachment: payload });
const fullTransferMs = performance.now() - start;
if (attachment?.length !== PAYLOAD_BYTES) throw new Error('echo lost bytes');

const rawSetup = await time(SETUPS, async () => (await connectedChannelPair()).close());
const fullSetup = await time(SETUPS, async () => (await server.client()).close());
pair.close();
await server.close();

const mbps = (ms: number) => round((2 * PAYLOAD_BYTES) / 1e6 / (ms / 1000));
const result = {
  date: new Date().toISOString(),
  node: process.version,
  round_trip: { raw: summarize(samples.raw), echo: summarize(samples.echo), health: summarize(samples.health) },
  transfer_16MiB_each_way_MBps: { raw: mbps(rawTransferMs), echo: mbps(fullTransferMs) },
  setup: { raw: summarize(rawSetup), connect: summarize(fullSetup) },
};

const rows: [string, number, number, number | null][] = [
  ['round trip p50 (ms)', result.round_trip.raw.p50_ms, result.round_trip.echo.p50_ms, result.round_trip.health.p50_ms],
  ['round trip p99 (ms)', result.round_trip.raw.p99_ms, result.round_trip.echo.p99_ms, result.round_trip.health.p99_ms],
  ['16 MiB up + back (MB/s)', result.transfer_16MiB_each_way_MBps.raw, result.transfer_16MiB_each_way_MBps.echo, null],
  ['session setup p50 (ms)', result.setup.raw.p50_ms, result.setup.connect.p50_ms, null],
];
console.log(`\n${'metric'.padEnd(26)}${'raw wrtc'.padStart(10)}${'full stack'.padStart(12)}${'(health)'.padStart(10)}   full / raw`);
for (const [name, base, full, health] of rows) {
  const cells = [base, full, health].map((v, i) => (v === null ? '' : String(v)).padStart([10, 12, 10][i])).join('');
  console.log(`${name.padEnd(26)}${cells}   ${round(full / base)}x`);
}
const file = new URL(`./results/${result.date.slice(0, 10)}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
console.log(`\nwrote ${file.pathname}`);
process.exit(0);
