/**
 * `npm run bench:cluster`: the cluster as deploy/local-cluster.sh starts it (N built instances, HAProxy, PostgreSQL,
 * on loopback), with 1, 2 and 3 instances:
 * - rpc.health over HTTP through the balancer, CALLS_IN_FLIGHT at once for LOAD_MS: requests/s, p50 and p99; the
 *   baseline, in the same run, is the same load on one instance without the balancer;
 * - new sessions through the balancer (offer, answer, data channel open, one request, close), SETUPS_IN_FLIGHT at
 *   once: sessions/s and p99; with more than one instance most signaling calls are forwarded to the session's holder;
 * - recovery (3 instances): SESSIONS clients sending a request every 100 ms; one instance is killed (-9); for each of
 *   its clients, the time from the kill to its first answer from a live instance.
 * Uses TEST_DATABASE_URL's server when set (a schema of its own), else .ci/postgres.sh's (as root).
 */
import wrtc from '@roamhq/wrtc';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { connect, type TabAgent } from '../src/client/index.ts';
import { nodeOf } from '../src/session/ids.ts';
import { buildNode } from '../scripts/build-node.ts';
import { startLocalCluster } from '../test/fixtures/cluster.ts';
import { FetchEventSource } from '../test/fixtures/sse.ts';
import { inBatches, percentiles, round, sleep, type Percentiles } from './measure.ts';

const LOAD_MS = Number(process.env.BENCH_CLUSTER_LOAD_MS ?? 5_000);
const CALLS_IN_FLIGHT = Number(process.env.BENCH_CLUSTER_CALLS ?? 32);
const SETUPS = Number(process.env.BENCH_CLUSTER_SETUPS ?? 40);
const SETUPS_IN_FLIGHT = 4;
const SESSIONS = Number(process.env.BENCH_CLUSTER_SESSIONS ?? 30);
const ENV = {
  TABAGENT_UPSTREAM_URL: 'off',
  TABAGENT_MAX_SESSIONS_PER_IP: '10000',
  TABAGENT_SESSION_RATE_PER_MINUTE: '0',
  TABAGENT_MESSAGE_RATE_PER_SECOND: '0',
  LOG_LEVEL: 'warn',
};

interface Rate extends Percentiles {
  per_s: number;
}

/** rpc.health at `url`, CALLS_IN_FLIGHT at a time for LOAD_MS. */
async function httpLoad(url: string): Promise<Rate> {
  const latencies: number[] = [];
  const until = performance.now() + LOAD_MS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CALLS_IN_FLIGHT }, async () => {
      while (performance.now() < until) {
        const sent = performance.now();
        const response = await fetch(`${url}/trpc/rpc.health`);
        if (!response.ok) throw new Error(`rpc.health answered ${response.status}: ${await response.text()}`);
        await response.arrayBuffer();
        latencies.push(performance.now() - sent);
      }
    }),
  );
  return { per_s: round(latencies.length / ((performance.now() - started) / 1000), 1), ...percentiles(latencies) };
}

/** SETUPS sessions through `url`, SETUPS_IN_FLIGHT at a time: each opened, asked once, closed. */
async function setups(url: string): Promise<Rate> {
  const latencies: number[] = [];
  const started = performance.now();
  await inBatches(SETUPS, SETUPS_IN_FLIGHT, async () => {
    const sent = performance.now();
    const client = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
    await client.health();
    latencies.push(performance.now() - sent);
    await client.close();
  });
  return { per_s: round(latencies.length / ((performance.now() - started) / 1000), 1), ...percentiles(latencies) };
}

/** SESSIONS active clients on 3 instances, one instance killed: how long each of its clients takes to be served again. */
async function recovery(): Promise<{ clients: number; recovered_ms: Percentiles & { max_ms: number } }> {
  const cluster = await startLocalCluster({ instances: 3, env: ENV });
  const clients: TabAgent[] = [];
  try {
    for (let i = 0; i < SESSIONS; i++) {
      const options = { reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, disconnectedMs: 1_000 } };
      clients.push(await connect({ url: cluster.url, RTCPeerConnection: wrtc.RTCPeerConnection, EventSource: FetchEventSource as unknown as typeof EventSource, ...options }));
    }
    const victim = nodeOf(clients[0].sessionId)!;
    const killedAt = { ms: Infinity };
    const recovered: number[] = [];
    let stop = false;
    const active = clients.map(async (client) => {
      const wasOnVictim = nodeOf(client.sessionId) === victim;
      while (!stop) {
        await client.health().catch(() => {});
        if (wasOnVictim && performance.now() > killedAt.ms && nodeOf(client.sessionId) !== victim) {
          recovered.push(performance.now() - killedAt.ms);
          return;
        }
        await sleep(100);
      }
    });
    await sleep(1_000);
    const victims = clients.filter((client) => nodeOf(client.sessionId) === victim).length;
    process.kill(cluster.pids()[Number(victim.split('-')[1]) - 1], 'SIGKILL');
    killedAt.ms = performance.now();
    for (const deadline = Date.now() + 60_000; recovered.length < victims && Date.now() < deadline; ) await sleep(50);
    stop = true;
    await Promise.all(active);
    if (recovered.length < victims) throw new Error(`${victims - recovered.length} of ${victims} clients did not recover within 60 s`);
    return { clients: victims, recovered_ms: { ...percentiles(recovered), max_ms: round(Math.max(...recovered)) } };
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await cluster.stop();
  }
}

await buildNode();
const byInstances: Record<number, { http: Rate; sessions: Rate }> = {};
let baseline: Rate | undefined;
for (const instances of [1, 2, 3]) {
  const cluster = await startLocalCluster({ instances, env: ENV });
  try {
    // Warm up each instance's connection pool and JIT before measuring.
    await Promise.all(cluster.nodes.map((node) => fetch(`${node}/trpc/rpc.health`).then((r) => r.arrayBuffer())));
    if (instances === 1) baseline = await httpLoad(cluster.nodes[0]);
    byInstances[instances] = { http: await httpLoad(cluster.url), sessions: await setups(cluster.url) };
  } finally {
    await cluster.stop();
  }
}
const recovered = await recovery();

const ratio = (value: number, base: number) => `${round(value / base, 2)}×`;
const lines = [
  `| | rpc.health req/s | p50 ms | p99 ms | sessions/s | setup p50 ms | setup p99 ms |`,
  `| --- | --- | --- | --- | --- | --- | --- |`,
  `| 1 instance, no balancer (baseline) | ${baseline!.per_s} | ${baseline!.p50_ms} | ${baseline!.p99_ms} | | | |`,
  ...Object.entries(byInstances).map(
    ([n, { http, sessions }]) =>
      `| ${n} behind HAProxy | ${http.per_s} (${ratio(http.per_s, baseline!.per_s)}) | ${http.p50_ms} | ${http.p99_ms} (${ratio(http.p99_ms, baseline!.p99_ms)}) | ${sessions.per_s} | ${sessions.p50_ms} | ${sessions.p99_ms} |`,
  ),
];
console.log(`\n${lines.join('\n')}`);
console.log(
  `\nrecovery, kill -9 of one of 3 instances: ${recovered.clients} clients back on a live instance; ` +
    `p50 ${recovered.recovered_ms.p50_ms} ms, max ${recovered.recovered_ms.max_ms} ms`,
);
console.log(`(${os.cpus().length} cores: the instances, HAProxy, PostgreSQL and this client share them)`);
const output = {
  date: new Date().toISOString(),
  cpus: os.cpus().length,
  settings: { LOAD_MS, CALLS_IN_FLIGHT, SETUPS, SETUPS_IN_FLIGHT, SESSIONS },
  baseline_one_instance_direct: baseline,
  behind_haproxy: byInstances,
  recovery: recovered,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/cluster-${output.date.slice(0, 10)}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(output, null, 2) + '\n');
console.log(`\nwrote ${file.pathname}`);
process.exit(0);
