/**
 * Stopping the server as people do: Ctrl-C on `npm start` or `npx tsx src/main.ts` (SIGINT to the terminal's
 * process group, which npm and tsx may also relay), systemd's default stop (SIGTERM to every process of the
 * service, a peer process included when TABAGENT_PEER_PROCESSES asks for one), or a signal to the server alone.
 * Real processes, real wrtc clients with streams running. Each time: every stream in flight finishes whole (or, past the grace, ends `shutting_down`),
 * every client is told `shutting_down`, the server and what started it exit 0, and no process is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import wrtc from '@roamhq/wrtc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Chunk, type TabAgent } from '../src/client/index.ts';
import { alive, freePort, sleep, withTimeout } from './fixtures/dev-server.ts';
import { startUpstream, type Upstream } from './fixtures/upstream.ts';

const root = path.resolve(import.meta.dirname, '..');
const shutdown = suite('shutdown');
const TOKEN_DELAY_MS = 40;

/**
 * How the server is started, as a user types it, and how the launcher itself ends. npm start execs the server, so
 * npm exits with its status; npx runs tsx through a shell of its own, which the Ctrl-C ends, and npm then exits
 * with that signal's status whatever the server did (the server's own exit is checked all the same).
 */
const LAUNCHERS = {
  'npm start': { command: ['npm', 'start'], exitsZero: true },
  'npx tsx src/main.ts': { command: ['npx', 'tsx', 'src/main.ts'], exitsZero: false },
} as const;

interface Running {
  launcher: ChildProcess;
  exitsZero: boolean;
  url: string;
  output(): string;
  /** The launcher's exit code, or the signal that ended it. */
  exited: Promise<number | string | null>;
}

let upstream: Upstream;
let dataDir: string;
shutdown.before(async () => {
  upstream = await startUpstream({ tokenDelayMs: TOKEN_DELAY_MS });
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'tabagent-shutdown-'));
});
shutdown.after(async () => {
  await upstream.close();
  rmSync(dataDir, { recursive: true, force: true });
});
/** What a failed test may have left running: its clients, and the processes it started. */
const leftovers: { clients: TabAgent[]; pids: number[] } = { clients: [], pids: [] };
shutdown.after.each(() => {
  for (const client of leftovers.clients.splice(0)) client.close();
  for (const pid of leftovers.pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already, as it should be
    }
  }
});

/** Starts the server with `launcher`, in a process group of its own (as a terminal runs a command); waits until it listens. */
async function launch(launcher: keyof typeof LAUNCHERS, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort();
  const { command: [command, ...args], exitsZero } = LAUNCHERS[launcher];
  const child = spawn(command, args, {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', TABAGENT_UPSTREAM_URL: upstream.url, TABAGENT_DATA_DIR: dataDir, ...env },
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  leftovers.pids.push(-child.pid!);
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  await withTimeout(
    (async () => {
      while (!output.includes('listening on')) {
        if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${output}`);
        await sleep(50);
      }
    })(),
    60_000,
    () => `the server to listen; output:\n${output}`,
  );
  return { launcher: child, exitsZero, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

/** The processes under `pid` (its children, theirs, ...), the peer process included: it leaves the group, not the tree. */
function descendants(pid: number): { pid: number; command: string }[] {
  let children: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      children.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {
    children = [];
  }
  return children.flatMap((child) => [{ pid: child, command: commandOf(child) }, ...descendants(child)]);
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** A client with a stream running: `words` tokens, TOKEN_DELAY_MS apart. */
async function streaming(url: string, words: number) {
  const client: TabAgent = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
  leftovers.clients.push(client);
  const told: number[] = [];
  client.on('shutting_down', ({ grace_ms }) => told.push(grace_ms));
  const prompt = Array.from({ length: words }, (_, i) => `w${i}`).join(' ');
  const stream = client.stream('chat', { model: 'llama3.2:3b', stream: true, messages: [{ role: 'user', content: `[slow] ${prompt}` }] });
  const chunks: Chunk[] = [];
  const done = (async () => {
    for await (const chunk of stream) chunks.push(chunk);
    return stream.result;
  })();
  done.catch(() => {});
  // Under way before the signal: the first token has come.
  await withTimeout((async () => { while (chunks.length === 0) await sleep(10); })(), 15_000, 'the stream to start');
  return { client, chunks, done, told, expected: `echo: [slow] ${prompt}` };
}

/**
 * Runs `signal` against a started server while streams run, then checks what every client and process saw.
 * `peerProcess`: the server was started with one (TABAGENT_PEER_PROCESSES=1); by default its peers are its own.
 */
async function stopWhileStreaming(
  running: Running,
  send: (tree: { launcher: number; server: number; all: number[] }) => void,
  { peerProcess = false } = {},
) {
  const streams = await Promise.all([30, 40, 50].map((words) => streaming(running.url, words)));
  const tree = descendants(running.launcher.pid!);
  // The source under tsx (`npx tsx src/main.ts`), or the built program (`npm start`).
  const host = tree.find((p) => /process\/host\.ts|peer-process\.mjs/.test(p.command));
  assert.is(Boolean(host), peerProcess, `a peer process under the launcher when asked for, none otherwise: ${JSON.stringify(tree)}`);
  leftovers.pids.push(...tree.map((p) => p.pid));
  // The server is the peer process's parent; without one, the last (deepest) process running the server's code.
  const server = host
    ? Number(readFileSync(`/proc/${host.pid}/stat`, 'utf8').split(') ')[1].split(' ')[1])
    : tree.findLast((p) => /src\/main\.ts|dist\/server\.mjs/.test(p.command))!.pid;
  assert.ok(server, `the server under the launcher: ${JSON.stringify(tree)}`);
  send({ launcher: running.launcher.pid!, server, all: [running.launcher.pid!, ...tree.map((p) => p.pid)] });

  for (const [i, stream] of streams.entries()) {
    const answer = await withTimeout(stream.done, 30_000, () => `stream ${i} to finish; output:\n${running.output()}`);
    assert.is(answer.response, stream.expected, `stream ${i}: the whole answer`);
    assert.equal(stream.chunks.map((c) => c.index), [...stream.chunks.keys()], `stream ${i}: every chunk once, in order`);
    assert.equal(stream.told.length, 1, `stream ${i}: told shutting_down once`);
    stream.client.close();
  }
  const code = await withTimeout(running.exited, 30_000, () => `the launcher to exit; output:\n${running.output()}`);
  if (running.exitsZero) assert.is(code, 0, `the launcher's exit; output:\n${running.output()}`);
  // "stopped" is the server's last word before it exits 0.
  assert.ok(running.output().includes('stopped'), `the server drained and exited 0; output:\n${running.output()}`);
  assert.not.ok(running.output().includes('exiting without waiting'), 'one stop, not an abrupt second one');
  assert.not.ok(/peer process (died|stopped answering)/.test(running.output()), 'the peer process was not lost, nor replaced, during shutdown');
  await withTimeout((async () => { while ((host && alive(host.pid)) || alive(server)) await sleep(20); })(), 10_000, 'the server (and its peer process) to be gone');
  // All gone: their ids may be another process's soon.
  leftovers.pids.length = 0;
}

shutdown('Ctrl-C on npm start (SIGINT to the process group): the streams finish, exit 0, nothing left', async () => {
  const running = await launch('npm start');
  await stopWhileStreaming(running, ({ launcher }) => process.kill(-launcher, 'SIGINT'));
});

shutdown('Ctrl-C on npx tsx src/main.ts, pressed again within a second: the same stop, exit 0', async () => {
  const running = await launch('npx tsx src/main.ts');
  await stopWhileStreaming(running, ({ launcher }) => {
    process.kill(-launcher, 'SIGINT');
    setTimeout(() => process.kill(-launcher, 'SIGINT'), 300);
  });
});

shutdown("systemd's stop (SIGTERM to every process of the service, the peer process too): the streams finish, exit 0", async () => {
  const running = await launch('npm start', { TABAGENT_PEER_PROCESSES: '1' });
  await stopWhileStreaming(
    running,
    ({ all }) => {
      for (const pid of all) process.kill(pid, 'SIGTERM');
    },
    { peerProcess: true },
  );
});

shutdown('SIGTERM to the server alone, with a stream longer than the grace: it ends shutting_down, the others finish, exit 0', async () => {
  const running = await launch('npm start', { TABAGENT_SHUTDOWN_GRACE_MS: '4000' });
  const long = await streaming(running.url, 400);
  await stopWhileStreaming(running, ({ server }) => process.kill(server, 'SIGTERM'));
  const error = await long.done.then(() => undefined, (e: { code?: string }) => e);
  assert.is(error?.code, 'shutting_down', 'the stream past the grace');
  assert.equal(long.told.length, 1, 'told shutting_down');
  long.client.close();
});

shutdown.run();
