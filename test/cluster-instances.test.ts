/**
 * Two instances of a cluster in this process, on the PostgreSQL of TEST_DATABASE_URL (a schema of their own): every
 * signaling step of a session one holds, taken by the other; the internal route against calls not from a node; the
 * limits on new sessions over both, with clients told apart by the `X-Forwarded-For` a trusted proxy adds; and which
 * address a request comes from, behind proxies trusted or not. test/cluster.test.ts runs a whole cluster.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient, type SignalingClient } from '../src/client/signaling.ts';
import { Cluster } from '../src/cluster/index.ts';
import { CLUSTER_SECRET_HEADER, INTERNAL_PATH } from '../src/cluster/internal.ts';
import { loadConfig, type ConfigInput } from '../src/config.ts';
import { ANONYMOUS_IDENTITY } from '../src/security/auth.ts';
import { clientAddress } from '../src/security/client-address.ts';
import { openStore, type Store } from '../src/store/index.ts';
import { HOW_POSTGRES, machineHas } from './fixtures/machine.ts';
import { FrameInbox, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer, type TestServer } from './fixtures/server.ts';
import { openSse, sseData, subscriptionUrl } from './fixtures/sse.ts';

const NAME = 'two instances of a cluster';
const test = suite(NAME);
const ready = machineHas(NAME, { 'a PostgreSQL server (TEST_DATABASE_URL)': !!process.env.TEST_DATABASE_URL }, HOW_POSTGRES);
const SECRET = 'a-cluster-secret-of-this-suite';
const LIMITS = { maxSessionsPerIp: 2, sessionRatePerMinute: 4 };

interface Instance {
  server: TestServer;
  cluster: Cluster;
  store: Store;
}

const serverUrl = process.env.TEST_DATABASE_URL;
const schema = `cluster_limits_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
let databaseUrl: string;
let dataDir: string;
const instances: Instance[] = [];

async function admin(sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl ?? serverUrl });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

async function startInstance(nodeId: string): Promise<Instance> {
  const overrides: ConfigInput = { nodeId, databaseUrl, clusterSecret: SECRET, trustedProxies: ['127.0.0.1'], ...LIMITS };
  const config = loadConfig({}, { dataDir, ...overrides });
  const store = await openStore({ dataDir, databaseUrl });
  const cluster = await Cluster.open({ ...config, clusterSecret: SECRET, databaseUrl });
  const server = await startServer(overrides, { store, cluster });
  await cluster.join(server.url, () => server.app.sessions.size);
  return { server, cluster, store };
}

/** A new session's offer at `instance`, for the client at `address` (behind the trusted proxy at 127.0.0.1). */
async function offer(instance: Instance, address: string): Promise<{ status: number; code?: string; sessionId?: string }> {
  const response = await fetch(`${instance.server.url}/v1/webrtc/offer`, { method: 'POST', body: '{}', headers: { 'x-forwarded-for': address } });
  const body = await response.json();
  return { status: response.status, code: body.error?.code, sessionId: body.sessionId };
}

test.before(async () => {
  await admin(`CREATE SCHEMA ${schema}`);
  const url = new URL(serverUrl!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  databaseUrl = url.toString();
  dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-cluster-limits-'));
  instances.push(await startInstance('alpha'), await startInstance('beta'));
});

test.after(async () => {
  for (const { server, cluster, store } of instances) {
    await server.close();
    await cluster.close();
    await store.close();
  }
  if (serverUrl) {
    databaseUrl = serverUrl;
    await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Answers `offerSdp` with `peer`, all through `api`, and trickles its candidates; resolves once the channel is open. */
async function handshake(api: SignalingClient, peer: RawPeer, sessionId: string, offerSdp: string): Promise<RTCDataChannel> {
  await api.webrtc.answer.mutate({ sessionId, answerSdp: await peer.answer(offerSdp) });
  await peer.gathered;
  for (const candidate of peer.candidates) await api.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() });
  return peer.channel();
}

async function healthOver(channel: RTCDataChannel, requestId: string): Promise<Record<string, unknown>> {
  return new FrameInbox(channel).exchange(JSON.stringify({ action: 'health', request_id: requestId }), (f) => f.request_id === requestId);
}

test('a session alpha holds, signaled wholly through beta: answer, ICE, events, info, resume and close', async () => {
  const [alpha, beta] = instances;
  const viaAlpha = createSignalingClient({ url: alpha.server.url });
  const viaBeta = createSignalingClient({ url: beta.server.url });
  const peers = [rawPeer(), rawPeer()];
  try {
    const offer = await viaAlpha.webrtc.offer.mutate({});
    const { sessionId } = offer;
    assert.match(sessionId, /^alpha\./);
    const channel = await handshake(viaBeta, peers[0], sessionId, offer.offerSdp);
    assert.is((await healthOver(channel, 'h1')).node_id, 'alpha', 'the data channel goes to the holder');

    // Its events, streamed by beta from alpha's log (the backlog, then the bus).
    const events = await openSse(subscriptionUrl(beta.server.url, 'webrtc.events', { sessionId, ticket: offer.eventsTicket }));
    const isState = (state: string) => (event: { event: string; data: string }) =>
      event.event === 'message' && (sseData(event as never) as { state?: string }).state === state;
    await events.next(isState('connected'), 'connected, from the backlog');
    assert.is((await viaBeta.webrtc.session.query({ sessionId })).state, 'connected');

    // A resume through beta: the same session, a new peer on alpha; the stream from beta carries on across it.
    const resumed = await viaBeta.webrtc.offer.mutate({ resumeToken: offer.resumeToken });
    assert.equal([resumed.sessionId, resumed.resumed], [sessionId, true]);
    peers[0].close();
    const again = await handshake(viaBeta, peers[1], sessionId, resumed.offerSdp);
    assert.is((await healthOver(again, 'h2')).status, 'ok');
    assert.is((await viaBeta.webrtc.session.query({ sessionId })).counts.resumes, 1);
    await events.end();

    const followed = await openSse(subscriptionUrl(beta.server.url, 'webrtc.events', { sessionId, ticket: resumed.eventsTicket }));
    await followed.next(isState('connected'), 'connected on the new peer');
    assert.equal(await viaBeta.webrtc.close.mutate({ sessionId }), { success: true });
    await followed.next(isState('disconnected'), 'the close, over the bus');
    await followed.end();
    const gone = await viaAlpha.webrtc.session.query({ sessionId }).catch((error) => error);
    assert.is(gone.data?.appCode, 'not_found', 'closed on alpha itself');
  } finally {
    for (const peer of peers) peer.close();
  }
});

test('a session of a node no instance knows is node_gone; one of a known node that has no such session is not_found', async () => {
  const [alpha, beta] = instances;
  const ghost = await fetch(`${alpha.server.url}/v1/webrtc/session/ghost.${'A'.repeat(24)}`);
  assert.is(ghost.status, 404);
  assert.is((await ghost.json()).error.code, 'node_gone');
  const unknown = await fetch(`${alpha.server.url}/v1/webrtc/session/beta.${'A'.repeat(24)}`);
  assert.is(unknown.status, 404);
  assert.is((await unknown.json()).error.code, 'not_found', 'beta was asked, and has none');
  const resume = await fetch(`${beta.server.url}/v1/webrtc/offer`, { method: 'POST', body: JSON.stringify({ resumeToken: `ghost.${'B'.repeat(43)}` }) });
  assert.is((await resume.json()).error.code, 'node_gone');
});

test('the internal route: without the secret 403, a bad call 400, an oversize one 413; the node serves on', async () => {
  const [alpha] = instances;
  const post = (body: string, headers: Record<string, string> = { [CLUSTER_SECRET_HEADER]: SECRET }) =>
    fetch(`${alpha.server.url}${INTERNAL_PATH}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const call = JSON.stringify({ operation: 'info', identity: ANONYMOUS_IDENTITY, args: { sessionId: `alpha.${'A'.repeat(24)}` } });
  assert.is((await post(call, {})).status, 403, 'no secret');
  assert.is((await post(call, { [CLUSTER_SECRET_HEADER]: 'a-cluster-secret-of-another-one' })).status, 403, 'a wrong secret');
  const bad: [string, string][] = [
    ['{not json', 'invalid_json'],
    ['[]', 'invalid_request'],
    [JSON.stringify({ operation: 'drop_tables', identity: null, args: {} }), 'invalid_request'],
    [JSON.stringify({ operation: 'answer', identity: null, args: { sessionId: 1 } }), 'invalid_request'],
  ];
  for (const [body, code] of bad) {
    const response = await post(body);
    assert.is(response.status, 400, body);
    assert.is((await response.json()).error.code, code, body);
  }
  assert.is((await post('x'.repeat(2 * 1024 * 1024))).status, 413);
  assert.is((await post(call)).status, 404, 'a well-formed call for no session: not_found');
  assert.is((await post(call.replace(/"identity":\{[^}]*\}/, '"identity":null'))).status, 401, 'and without an identity, none of the owner\'s');
  assert.is((await fetch(`${alpha.server.url}/health`)).status, 200);
});

test('sessions per address count on every instance: a third on either is session_limit, and closing one frees a place', async () => {
  const [alpha, beta] = instances;
  const address = '198.51.100.7';
  const first = await offer(alpha, address);
  const second = await offer(beta, address);
  assert.equal([first.status, second.status], [200, 200]);
  const third = await offer(alpha, address);
  assert.equal([third.status, third.code], [429, 'session_limit'], 'alpha holds one, beta the other: the address has its two');
  assert.is((await offer(beta, '198.51.100.8')).status, 200, 'another address is not affected');

  // Closed on the instance that holds it (through the other one: it forwards), the session leaves the count.
  const closed = await fetch(`${alpha.server.url}/v1/webrtc/session/${second.sessionId}`, { method: 'DELETE' });
  assert.is(closed.status, 200);
  assert.is((await offer(alpha, address)).status, 200, 'a place again');
});

test('offers racing on both instances at once: exactly the limit are admitted', async () => {
  const [alpha, beta] = instances;
  const address = '198.51.100.9';
  const results = await Promise.all([0, 1, 2].map((i) => offer(i % 2 ? beta : alpha, address)));
  const admitted = results.filter((r) => r.status === 200);
  assert.is(admitted.length, LIMITS.maxSessionsPerIp, JSON.stringify(results));
  for (const refused of results.filter((r) => r.status !== 200)) assert.is(refused.code, 'session_limit');
  const { rows } = await admin(`SELECT count(*)::int AS n FROM ${schema}.cluster_sessions WHERE ip = '${address}'`);
  assert.is(rows[0].n, LIMITS.maxSessionsPerIp, 'the directory holds what was admitted, no more');
});

test('new sessions per address per minute count on every instance: past the rate on either is rate_limited', async () => {
  const [alpha, beta] = instances;
  const address = '198.51.100.10';
  const statuses = [];
  for (const instance of [alpha, beta, alpha, beta]) {
    const made = await offer(instance, address);
    statuses.push(made.status);
    // Closed at once, so the rate is what refuses the next, not the sessions held.
    if (made.sessionId) await fetch(`${instance.server.url}/v1/webrtc/session/${made.sessionId}`, { method: 'DELETE' });
  }
  assert.equal(statuses, [200, 200, 200, 200]);
  const over = await offer(alpha, address);
  assert.equal([over.status, over.code], [429, 'rate_limited']);
});

test('the address of a request: the connection, or behind trusted proxies the first hop from the right they did not add', () => {
  const trusted = new Set(['10.0.0.2', '10.0.0.3']);
  assert.is(clientAddress('192.0.2.1', '203.0.113.5', trusted), '192.0.2.1', 'an untrusted connection: its header is ignored');
  assert.is(clientAddress('10.0.0.2', '203.0.113.5', trusted), '203.0.113.5');
  assert.is(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.5, 10.0.0.3', trusted), '203.0.113.5', 'what the client wrote further left is not believed');
  assert.is(clientAddress('::ffff:10.0.0.2', '203.0.113.5', trusted), '203.0.113.5', 'an IPv4 peer of a dual-stack socket');
  assert.is(clientAddress('10.0.0.2', null, trusted), '10.0.0.2', 'no header: the proxy itself');
  assert.is(clientAddress('10.0.0.2', '10.0.0.3', trusted), '10.0.0.3', 'only proxies in the chain');
});

if (ready) test.run();
