/**
 * A server whose store cannot open says why and what to do in one line on stderr, and exits 1, without a stack
 * trace: a damaged or unwritable embedded store, one another process keeps locked, an unreachable or malformed
 * DATABASE_URL. The server runs as `npm start` runs it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from './fixtures/dev-server.ts';

const test = suite('the server cannot open its store');
const root = path.resolve(import.meta.dirname, '..');
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'store-startup-'));
  dirs.push(dir);
  return dir;
};

/** Starts the server with `env`; resolves with its exit code and stderr once it exits. */
async function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TABAGENT_UPSTREAM_URL: 'off', LOG_LEVEL: 'info', DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.on('data', (chunk) => (stderr += chunk));
  try {
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 30_000, () => `the server to exit:\n${stderr}`);
    return { code, stderr };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Exit 1, one line on stderr (the error), matching `pattern`, and no stack trace. */
function oneLine(result: { code: number | null; stderr: string }, pattern: RegExp): string {
  const lines = result.stderr.trim().split('\n');
  assert.is(result.code, 1, result.stderr);
  assert.is(lines.length, 1, `one line:\n${result.stderr}`);
  assert.match(lines[0], / error /);
  assert.match(lines[0], pattern);
  assert.not.match(result.stderr, /^\s+at /m, 'no stack trace');
  return lines[0];
}

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test('a store file that is not a database: the file, and to move it away', async () => {
  const dataDir = tempDir();
  writeFileSync(path.join(dataDir, 'store.sqlite'), Buffer.alloc(8192, 'not a database '));
  const line = oneLine(await start({ TABAGENT_DATA_DIR: dataDir }), /Cannot open the store .*store\.sqlite .*not a SQLite database, or it is damaged: move it away/);
  assert.match(line, dataDir);
});

test('a data directory that cannot be made: the directory, and TABAGENT_DATA_DIR', async () => {
  const file = path.join(tempDir(), 'a-file');
  writeFileSync(file, 'x');
  oneLine(await start({ TABAGENT_DATA_DIR: path.join(file, 'data') }), /Cannot open the store .*needs to read and write .*TABAGENT_DATA_DIR/);
});

test('a store another process keeps locked past TABAGENT_STORE_BUSY_TIMEOUT_MS: locked, and what to end', async () => {
  const dataDir = tempDir();
  const file = path.join(dataDir, 'store.sqlite');
  // A process that takes the write lock and keeps it, as a hung server or a sqlite3 shell mid-transaction would.
  const holder = spawn(
    process.execPath,
    ['-e', `const db = new (require('libsql'))(${JSON.stringify(file)}); db.exec('PRAGMA journal_mode = WAL; BEGIN IMMEDIATE'); console.log('locked'); setInterval(() => {}, 1000);`],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await withTimeout(new Promise((resolve) => holder.stdout!.once('data', resolve)), 10_000, 'the holder to take the lock');
    const started = Date.now();
    oneLine(await start({ TABAGENT_DATA_DIR: dataDir, TABAGENT_STORE_BUSY_TIMEOUT_MS: '500' }), /store .* is locked: another process has held its write lock for 0\.5 s.*end that process/);
    assert.ok(Date.now() - started < 20_000);
  } finally {
    holder.kill('SIGKILL');
  }
});

test('an unreachable DATABASE_URL: the URL without its password, and what to do', async () => {
  const line = oneLine(
    await start({ DATABASE_URL: 'postgres://someone:s3cret-pw@127.0.0.1:1/nothing' }),
    /Cannot connect to the PostgreSQL server at DATABASE_URL=postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nothing: .*correct DATABASE_URL; unset it to use the embedded store/,
  );
  assert.not.match(line, /s3cret/);
});

test('a DATABASE_URL that is not a postgres:// URL: the variable', async () => {
  oneLine(await start({ DATABASE_URL: 'mysql://someone@host/db' }), /Invalid DATABASE_URL: must be a postgres:\/\/ URL/);
});

test.run();
