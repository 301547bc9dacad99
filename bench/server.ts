/**
 * The server side of `npm run bench`, forked by bench/server-process.ts with --expose-gc: the app served as
 * `npm start` serves it (data channel, WebSocket, tRPC, the native socket; no store, no upstream unless
 * BENCH_UPSTREAM is set: then the upstream test double, which streams its tokens as fast as they are read, for the
 * churn), and raw wrtc echo peers whose signaling comes over IPC. Session limits are raised so that 100 sessions
 * per transport fit. The peer backend and processes come from the environment (TABAGENT_PEER_BACKEND,
 * TABAGENT_PEER_PROCESSES).
 */
import wrtc from '@roamhq/wrtc';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { setLogLevel } from '../src/log.ts';
import { nativeSocketPath } from '../src/paths.ts';
import { serveApp } from '../src/serve.ts';
import { echo } from './raw-echo.ts';
import type { FromServer, ToServer } from './server-process.ts';
import { procCpuMs, procRssBytes, procThreads, sleep } from './measure.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';

setLogLevel('warn');
const dataDir = mkdtempSync(path.join(tmpdir(), 'tabagent-bench-'));
const upstream = process.env.BENCH_UPSTREAM ? await startUpstream({ tokenDelayMs: 0 }) : undefined;
const config = loadConfig(process.env, {
  port: 0,
  dataDir,
  upstreamUrl: upstream?.url ?? 'off',
  maxSessions: 10_000,
  maxSessionsPerIp: 10_000,
  sessionRatePerMinute: 0,
  messageRatePerSecond: 0,
  // The churn's sessions end as their clients close abruptly: none waits for a resume.
  ...(upstream && { resumeGraceMs: 0 }),
});
const app = createApp(config);
await app.start();
const server = await serveApp(app, { hostname: '127.0.0.1', port: 0 }).ready();
await app.native.listen(nativeSocketPath(dataDir));
const gc = (globalThis as { gc?: () => void }).gc;

const send = (message: FromServer): void => void process.send!(message);
const rawPeers = new Map<string, { pc: RTCPeerConnection; early: RTCIceCandidateInit[]; answered: boolean }>();

async function rawOffer(peer: string, sdp: string): Promise<string> {
  const pc: RTCPeerConnection = new wrtc.RTCPeerConnection({ iceServers: [] });
  const state = { pc, early: [] as RTCIceCandidateInit[], answered: false };
  rawPeers.set(peer, state);
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) send({ type: 'raw-candidate', peer, candidate: candidate.toJSON() });
  };
  pc.ondatachannel = ({ channel }) => echo(channel);
  await pc.setRemoteDescription({ type: 'offer', sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  state.answered = true;
  for (const candidate of state.early) await pc.addIceCandidate(candidate).catch(() => {});
  return answer.sdp!;
}

async function handle(message: ToServer): Promise<void> {
  switch (message.type) {
    case 'usage': {
      if (message.gc && gc) {
        // wrtc frees a closed peer's native side some time after its JS object goes: collect, wait, collect.
        gc();
        await sleep(200);
        gc();
      }
      // The server's share includes its peer processes', where the peers run.
      const peerPids = (app.peerProcesses?.processes ?? []).flatMap(({ pid }) => (pid ? [pid] : []));
      const { user, system } = process.cpuUsage();
      const cpuMs = (user + system) / 1000 + peerPids.reduce((sum, pid) => sum + procCpuMs(pid), 0);
      const { rss, heapUsed, external } = process.memoryUsage();
      const rssBytes = rss + peerPids.reduce((sum, pid) => sum + procRssBytes(pid), 0);
      const threads = procThreads('self') + peerPids.reduce((sum, pid) => sum + procThreads(pid), 0);
      const crashes = app.peerProcesses?.crashes ?? 0;
      if (upstream) upstream.requests.length = 0; // the double records every request; the churn reads none
      return send({ type: 'reply', id: message.id, cpuMs, crashes, memory: { rssBytes, heapBytes: heapUsed + external, threads } });
    }
    case 'raw-offer':
      return send({ type: 'reply', id: message.id, sdp: await rawOffer(message.peer, message.sdp) });
    case 'raw-candidate': {
      const state = rawPeers.get(message.peer);
      if (state && !state.answered) state.early.push(message.candidate);
      else state?.pc.addIceCandidate(message.candidate).catch(() => {});
      return;
    }
    case 'raw-close':
      rawPeers.get(message.peer)?.pc.close();
      rawPeers.delete(message.peer);
      return send({ type: 'reply', id: message.id });
  }
}

process.on('message', (message: ToServer) => void handle(message));
process.on('SIGTERM', async () => {
  await app.close(0);
  await upstream?.close();
  for (const { pc } of rawPeers.values()) pc.close();
  await server.close(true);
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
});
send({ type: 'ready', url: new URL(server.url!).origin, dataDir });
