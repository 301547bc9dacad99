/**
 * File descriptors (src/peer/fd-budget.ts): a peer process never runs out of them, whatever clients ask. Offers
 * past its budget get 503 `server_busy` instead of taking the process, and every session in it, down with EMFILE.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FD_RESERVE, FDS_PER_PEER } from '../src/peer/fd-budget.ts';
import { startDevServer } from './fixtures/dev-server.ts';
import { FrameInbox, rawPeer, type RawPeer } from './fixtures/raw-peer.ts';
import { startServer } from './fixtures/server.ts';

const test = suite('fd budget');

async function offer(url: string): Promise<{ status: number; body: Record<string, any> }> {
  const response = await fetch(`${url}/v1/webrtc/offer`, { method: 'POST', body: JSON.stringify({ trickle: true }) });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** The peer process under `pid`, found through the children of each of its threads. */
function peerProcessOf(pid: number): number | undefined {
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
      if (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('process/host.ts')) return Number(child);
    }
  }
  return undefined;
}

test('under a 700-file limit, unanswered offers fill the budget, the rest get 503 server_busy, the peer process never runs out', async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tabagent-fd-'));
  const server = await startDevServer(
    // A peer process, asked for (peers run in the server by default): its own limit is what this test reads.
    { TABAGENT_UPSTREAM_URL: 'off', TABAGENT_DATA_DIR: dataDir, TABAGENT_SESSION_RATE_PER_MINUTE: '0', TABAGENT_MAX_SESSIONS_PER_IP: '100', TABAGENT_PEER_PROCESSES: '1' },
    undefined,
    'node',
    { openFiles: { soft: 300, hard: 700 } },
  );
  try {
    const host = peerProcessOf(server.process.pid!)!;
    const limits = readFileSync(`/proc/${host}/limits`, 'utf8').split('\n').find((line) => line.startsWith('Max open files'))!;
    assert.equal(limits.split(/\s{2,}/).slice(1, 3), ['700', '700'], 'the soft limit raised to the hard one');

    const statuses: number[] = [];
    const sessions: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { status, body } = await offer(server.url);
      statuses.push(status);
      if (status === 200) sessions.push(body.sessionId);
      else assert.is(body.error.code, 'server_busy', JSON.stringify(body));
    }
    const fits = Math.floor((700 - FD_RESERVE) / FDS_PER_PEER.unconnected);
    assert.equal(statuses, [...Array(fits).fill(200), ...Array(20 - fits).fill(503)]);
    assert.is(peerProcessOf(server.process.pid!), host, 'the same peer process, alive');
    const open = readdirSync(`/proc/${host}/fd`).length;
    assert.ok(open < 700, `the peer process holds ${open} files, under its limit`);
    assert.not.ok(server.output().includes('peer process died'), server.output());

    await fetch(`${server.url}/v1/webrtc/session/${sessions[0]}`, { method: 'DELETE' });
    assert.is((await offer(server.url)).status, 200, 'a closed offer made room');
  } finally {
    server.process.kill('SIGTERM');
    await server.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a connected peer counts for less than an offer waiting for its answer: connecting one makes room', async () => {
  const budget = 2 * FDS_PER_PEER.unconnected + FDS_PER_PEER.connected;
  const server = await startServer({ peerFdBudget: budget, maxSessionsPerIp: 100 });
  const peer: RawPeer = rawPeer();
  try {
    const first = await offer(server.url);
    assert.is((await offer(server.url)).status, 200);
    assert.is((await offer(server.url)).status, 503, 'two offers fill it');

    const answerSdp = await peer.answer(first.body.offerSdp);
    await fetch(`${server.url}/v1/webrtc/answer/${first.body.sessionId}`, { method: 'POST', body: JSON.stringify({ answerSdp }) });
    for (const candidate of (await peer.gathered, peer.candidates)) {
      await fetch(`${server.url}/v1/webrtc/ice/${first.body.sessionId}`, { method: 'POST', body: JSON.stringify({ candidate }) });
    }
    const inbox = new FrameInbox(await peer.channel('tabagent'));
    assert.is((await inbox.exchange(JSON.stringify({ action: 'health', request_id: 'h' }), (f) => f.request_id === 'h')).status, 'ok');
    assert.is((await offer(server.url)).status, 200, 'once the first connected');
  } finally {
    peer.close();
    await server.close();
  }
});

test.run();
