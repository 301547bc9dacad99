/**
 * Several instances behind a real load balancer, as deploy/local-cluster.sh starts them: three built servers, HAProxy
 * (round robin, no stickiness) and PostgreSQL, all on loopback, with real wrtc clients that reach them only through
 * the balancer. Their signaling calls land on any instance and must reach the one holding their session; then one
 * instance is killed mid-load, and the rest restarted one by one. The upstream is this suite's test double.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import wrtc from '@roamhq/wrtc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Chunk, type TabAgent } from '../src/client/index.ts';
import { createSignalingClient } from '../src/client/signaling.ts';
import { nodeOf } from '../src/session/ids.ts';
import { startLocalCluster, type LocalCluster } from './fixtures/cluster.ts';
import { sleep, withTimeout } from './fixtures/dev-server.ts';
import { hasCommand, HOW_POSTGRES, machineHas } from './fixtures/machine.ts';
import { FetchEventSource } from './fixtures/sse.ts';
import { startUpstream, type Upstream } from './fixtures/upstream.ts';

const run = promisify(execFile);
const NAME = 'a cluster: three instances behind HAProxy, one PostgreSQL';
const test = suite(NAME);
const ready = machineHas(
  NAME,
  { 'a PostgreSQL server (TEST_DATABASE_URL)': !!process.env.TEST_DATABASE_URL, haproxy: hasCommand('haproxy'), openssl: hasCommand('openssl') },
  `${HOW_POSTGRES}; apt-get install haproxy openssl (.ci/run does)`,
);
const CLIENTS = 30;
const NODES = ['node-1', 'node-2', 'node-3'];
/** A chat's prompt: the upstream double streams it back a word a token, 20 ms apart. */
const words = (tag: string, n = 12) => Array.from({ length: n }, (_, i) => `${tag}w${i}`).join(' ');

let upstream: Upstream;
let cluster: LocalCluster;
let certDir: string;
const clients: TabAgent[] = [];

/** What one streamed chat did: its chunks' indexes, its answer, or its error. */
interface ChatOutcome {
  indexes: number[];
  response?: string;
  error?: { code?: string; message: string };
  expected: string;
}

async function chat(client: TabAgent, prompt: string): Promise<ChatOutcome> {
  const stream = client.stream('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content: prompt }] });
  const indexes: number[] = [];
  const expected = `echo: ${prompt}`;
  try {
    for await (const chunk of stream as AsyncIterable<Chunk>) indexes.push(chunk.index ?? -1);
    return { indexes, response: (await stream.result).response, expected };
  } catch (error) {
    return { indexes, error: { code: (error as { code?: string }).code, message: (error as Error).message }, expected };
  }
}

/** No chunk twice, none skipped: a stream's indexes count up from 0 (whole, or cut short by an error). */
function assertOnce(outcome: ChatOutcome, what: string): void {
  assert.equal(outcome.indexes, [...outcome.indexes.keys()], `${what}: each chunk once, in order`);
  if (!outcome.error) assert.is(outcome.response, outcome.expected, `${what}: the whole answer`);
}

/** Every client chats in a loop until `until()` holds; each one's outcomes, in order. */
async function load(until: () => boolean): Promise<ChatOutcome[][]> {
  return Promise.all(
    clients.map(async (client, c) => {
      const outcomes: ChatOutcome[] = [];
      for (let round = 0; !until() && round < 1_000; round++) outcomes.push(await chat(client, words(`c${c}r${round}`)));
      return outcomes;
    }),
  );
}

test.before(async () => {
  certDir = await mkdtemp(path.join(tmpdir(), 'tabagent-cluster-tls-'));
  // A self-signed certificate for 127.0.0.1, and its key, in the one PEM file HAProxy reads.
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${certDir}/key.pem`, '-out', `${certDir}/cert.pem`]);
  await run('sh', ['-c', `cat "${certDir}/cert.pem" "${certDir}/key.pem" > "${certDir}/haproxy.pem"`]);
  upstream = await startUpstream({ tokenDelayMs: 20 });
  cluster = await startLocalCluster({
    instances: 3,
    tlsPem: `${certDir}/haproxy.pem`,
    env: {
      TABAGENT_UPSTREAM_URL: upstream.url,
      // Every client here comes from 127.0.0.1, and reconnects open sessions: the per-address limits are not the point.
      TABAGENT_MAX_SESSIONS_PER_IP: '1000',
      TABAGENT_SESSION_RATE_PER_MINUTE: '0',
      TABAGENT_MESSAGE_RATE_PER_SECOND: '0',
      TABAGENT_SHUTDOWN_GRACE_MS: '10000',
      LOG_LEVEL: 'warn',
    },
  });
});

test.after(async () => {
  await Promise.all(clients.map((client) => client.close().catch(() => {})));
  await cluster?.stop();
  await upstream?.close();
  await rm(certDir, { recursive: true, force: true });
});

test(`${CLIENTS} clients through the balancer: sessions on every instance, each signaling call reaching the one that holds it`, async () => {
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(
      await connect({
        url: cluster.url,
        RTCPeerConnection: wrtc.RTCPeerConnection,
        // Candidates and states over webrtc.events: an SSE stream that any instance may hold for any session.
        EventSource: FetchEventSource as unknown as typeof EventSource,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, disconnectedMs: 1_000 },
      }),
    );
  }
  const holders = clients.map((client) => nodeOf(client.sessionId)!);
  assert.equal([...new Set(holders)].sort(), NODES, 'round robin spread the sessions over the three');

  // The data channel goes to the instance that holds the session, whichever one took the offer.
  const nodeIds = await Promise.all(clients.map(async (client) => (await client.system_info()).node_id));
  assert.equal(nodeIds, holders, 'system_info over each data channel names the node in its session id');

  // Any instance, asked directly, answers for any session (another's by forwarding it to its holder).
  const [first] = clients;
  for (const url of cluster.nodes) {
    const signaling = createSignalingClient({ url });
    const info = await signaling.webrtc.session.query({ sessionId: first.sessionId });
    assert.is(info.id, first.sessionId, `${url}: the same session`);
    assert.is(info.state, 'connected', `${url}: its state, as its holder sees it`);
  }

  const outcomes = (await Promise.all(clients.map((client, c) => Promise.all([0, 1].map((r) => chat(client, words(`c${c}s${r}`))))))).flat();
  for (const [i, outcome] of outcomes.entries()) {
    assert.not.ok(outcome.error, `chat ${i}: ${outcome.error?.message}`);
    assertOnce(outcome, `chat ${i}`);
  }
});

test('kill -9 one instance mid-load: its clients are back on the others within seconds, nothing twice, the others see no error', async () => {
  const victim = 'node-2';
  const pid = cluster.pids()[NODES.indexOf(victim)];
  const onVictim = new Set(clients.filter((client) => nodeOf(client.sessionId) === victim));
  assert.ok(onVictim.size > 0, 'some clients are on the victim');
  const sessionsBefore = clients.map((client) => client.sessionId);

  let stop = false;
  const running = load(() => stop);
  await sleep(1_500);
  process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  // Each of the victim's clients, back: a session on a live node that answers.
  const recovery = await Promise.all(
    [...onVictim].map((client) =>
      withTimeout(
        (async () => {
          while (nodeOf(client.sessionId) === victim) await sleep(20);
          await client.health();
          return Date.now() - killedAt;
        })(),
        30_000,
        `client ${client.sessionId} to leave ${victim}`,
      ),
    ),
  );
  await sleep(1_000);
  stop = true;
  const outcomes = await withTimeout(running, 60_000, 'the load to finish');

  for (const [c, client] of clients.entries()) {
    const mine = outcomes[c];
    for (const [r, outcome] of mine.entries()) assertOnce(outcome, `client ${c} chat ${r}`);
    if (onVictim.has(client)) {
      assert.not.equal(nodeOf(client.sessionId), victim, `client ${c} moved`);
      // A chat the dead instance had begun to answer cannot be told apart from one it finished: the client says
      // `interrupted` (sending it again could act twice); one it had not answered at all was sent again.
      for (const outcome of mine) if (outcome.error) assert.is(outcome.error.code, 'interrupted', `client ${c}: ${outcome.error.message}`);
      assert.ok(!mine.at(-1)!.error, `client ${c}: chats after the move are answered`);
    } else {
      assert.is(client.sessionId, sessionsBefore[c], `client ${c} kept its session`);
      for (const outcome of mine) assert.not.ok(outcome.error, `client ${c} (on ${nodeOf(client.sessionId)}): ${outcome.error?.message}`);
    }
  }
  console.log(`  recovery after kill -9, per client of ${victim}: max ${Math.max(...recovery)} ms, ${recovery.length} clients`);
});

test('a rolling restart with SIGTERM, one instance at a time, under load: every chat answered whole', async () => {
  let stop = false;
  const running = load(() => stop);
  for (let i = 1; i <= NODES.length; i++) {
    await sleep(1_000);
    await cluster.restart(i);
  }
  await sleep(1_000);
  stop = true;
  const outcomes = await withTimeout(running, 90_000, 'the load to finish');
  for (const [c, mine] of outcomes.entries()) {
    assert.ok(mine.length > 0, `client ${c} chatted`);
    for (const [r, outcome] of mine.entries()) {
      assert.not.ok(outcome.error, `client ${c} chat ${r}: ${outcome.error?.message}`);
      assertOnce(outcome, `client ${c} chat ${r}`);
    }
  }
  const holders = new Set(clients.map((client) => nodeOf(client.sessionId)));
  assert.ok(holders.size >= 2, `sessions spread again (${[...holders].join(', ')})`);
});

test('TLS at the balancer: a client that trusts the certificate connects over https and chats', async () => {
  const httpsUrl = cluster.url.replace(/^http:(.*):(\d+)$/, (_, host: string, port: string) => `https:${host}:${Number(port) + 100}`);
  // Node's fetch trusts a certificate given by NODE_EXTRA_CA_CERTS only from startup: a process of its own.
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/chat-once.ts', httpsUrl, 'over tls'], {
    cwd: path.resolve(import.meta.dirname, '..'),
    env: { ...process.env, NODE_EXTRA_CA_CERTS: `${certDir}/cert.pem` },
    timeout: 60_000,
  });
  const answer = JSON.parse(stdout.trim().split('\n').at(-1)!) as { node: string; response: string };
  assert.ok(NODES.includes(answer.node), `a session on ${answer.node}`);
  assert.is(answer.response, 'echo: over tls');

  // And one that does not trust it is refused.
  const refused = await fetch(`${httpsUrl}/health`).then(
    () => 'connected',
    (error: Error & { cause?: { code?: string } }) => error.cause?.code,
  );
  assert.is(refused, 'DEPTH_ZERO_SELF_SIGNED_CERT');
});

if (ready) test.run();
