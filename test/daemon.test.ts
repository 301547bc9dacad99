/**
 * The server as a daemon, run as a user runs it (`tsx src/main.ts`, real processes): it refuses to start with one
 * clear line naming the cause and the fix, answers readiness, and a server started by the native host for Chrome
 * serves the hosts that come after and stops by itself once nobody uses it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnNativeHost } from '../src/transports/native/client.ts';
import { nativeSocketPath, serverPidPath } from '../src/paths.ts';
import { createSignalingClient } from '../src/client/signaling.ts';
import { alive, freePort, sleep, startDevServer, withTimeout } from './fixtures/dev-server.ts';
import { fakeInference } from './fixtures/engine.ts';
import { startServer } from './fixtures/server.ts';

const root = path.resolve(import.meta.dirname, '..');
const test = suite('the server as a daemon');
const dirs: string[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tabagent-daemon-'));
  dirs.push(dir);
  return dir;
}

/** `tsx src/main.ts` with `env`, to its exit: its code and what it wrote to stderr. */
function run(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', TABAGENT_UPSTREAM_URL: 'off', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return withTimeout(
    new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr }))),
    60_000,
    () => `the server to exit; stderr:\n${stderr}`,
  );
}

async function gone(pid: number, what: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; alive(pid); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`${what}: ${pid} still runs`);
  }
}

test.after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test('a busy port, a bad setting, an unreachable DATABASE_URL: one line naming the cause and the fix, exit 1', async () => {
  const first = await startDevServer({ TABAGENT_DATA_DIR: await dataDir(), TABAGENT_UPSTREAM_URL: 'off' });
  try {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['a busy port', { PORT: String(first.port), TABAGENT_DATA_DIR: await dataDir() }, new RegExp(`127\\.0\\.0\\.1:${first.port} is already in use.*set PORT`)],
      ['a port that is not a number', { PORT: 'eighty', TABAGENT_DATA_DIR: await dataDir() }, /Invalid PORT/],
      ['an unreachable DATABASE_URL', { PORT: '0', DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:9/none' }, /DATABASE_URL/],
    ];
    for (const [what, env, expected] of cases) {
      const { code, stderr } = await run(env);
      assert.is(code, 1, `${what}: exit code`);
      const lines = stderr.trim().split('\n');
      assert.is(lines.length, 1, `${what}: one line, got:\n${stderr}`);
      assert.match(lines[0], / error cannot start: /, what);
      assert.match(lines[0], expected, what);
      assert.not.match(stderr, /secret|    at /, `${what}: no password, no stack trace`);
    }
    assert.is((await fetch(`${first.url}/health`)).status, 200, 'the first server is untouched');
  } finally {
    first.process.kill('SIGTERM');
    await first.exited;
  }
});

test('GET /health is 200 while the server takes work, 503 while it drains', async () => {
  const server = await startServer({ shutdownGraceMs: 5_000 }, { engines: fakeInference({ tokenDelayMs: 50 }) });
  const ready = await fetch(`${server.url}/health`);
  assert.is(ready.status, 200);
  assert.equal(await ready.json(), { status: 'ok', version: '0.1.0' });
  // A chat of 20 tokens, 50 ms apart, holds the shutdown in its grace: readiness is false meanwhile.
  const api = createSignalingClient({ url: server.url });
  const chat = api.rpc.chat.mutate({ messages: [{ role: 'user', content: Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ') }] });
  await sleep(200);
  const closing = server.app.close(5_000);
  const draining = await fetch(`${server.url}/health`);
  assert.is(draining.status, 503);
  assert.equal(await draining.json(), { status: 'shutting_down' });
  assert.is((await chat).type, 'chat_response', 'the request in flight still finished');
  await closing;
  await server.close();
});

test('the native host starts a server when none answers; the next hosts use it; it stops by itself once idle', async () => {
  const dir = await dataDir();
  const env = { TABAGENT_DATA_DIR: dir, PORT: String(await freePort()), TABAGENT_UPSTREAM_URL: 'off', TABAGENT_EXIT_WHEN_IDLE_MS: '1500' };
  // Two hosts at once, with nothing running: one server comes up, and both are served by it.
  const [a, b] = await Promise.all([spawnNativeHost({ env }), spawnNativeHost({ env })]);
  const answers = await withTimeout(Promise.all([a.request({ action: 'health' }), b.request({ action: 'health' })]), 60_000, 'both hosts answered');
  assert.equal(answers.map((answer) => answer.type), ['health', 'health']);
  assert.ok(existsSync(nativeSocketPath(dir)), 'the server listens on the native socket');
  const pid = Number(readFileSync(serverPidPath(dir), 'utf8'));
  assert.ok(alive(pid), 'the server runs');
  const c = await spawnNativeHost({ env });
  assert.is((await c.request({ action: 'get_stats' })).type, 'stats');
  assert.is((await c.request({ action: 'get_stats' })).sessions !== undefined, true);

  // Ports open: not idle, however long.
  await sleep(3_000);
  assert.ok(alive(pid), 'a server with open ports stays');
  for (const host of [a, b, c]) assert.is(await host.close(), 0);
  await gone(pid, 'the idle server to stop');
  assert.not.ok(existsSync(serverPidPath(dir)), 'its pid file is gone');
  assert.not.ok(existsSync(nativeSocketPath(dir)), 'its socket is gone');
});

test('a host whose server cannot start answers Chrome with one error message and exits 1', async () => {
  const blocker = await startServer();
  try {
    const port = new URL(blocker.url).port;
    const host = await spawnNativeHost({ env: { TABAGENT_DATA_DIR: await dataDir(), PORT: port, TABAGENT_UPSTREAM_URL: 'off' } });
    const error = await withTimeout(host.next((frame) => frame.type === 'error', 60_000), 70_000, 'the error message');
    assert.is(error.code, 'backend_unavailable');
    assert.match(String(error.message), /did not come up: .*already in use/);
    assert.is(await host.exited, 1);
  } finally {
    await blocker.close();
  }
});

test.run();
