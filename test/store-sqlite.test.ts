/**
 * The embedded store as several processes use it: a server and native hosts on one SQLite file, writing at once;
 * a process killed (SIGKILL) with writes in flight, again and again, the server included, right after it answered;
 * its settings (WAL, fsync on commit, foreign keys). What every backend does is in store.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/store/index.ts';
import type { SqlStore } from '../src/store/sql-store.ts';
import type { Store, StoredChunk } from '../src/store/types.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { startDevServer, withTimeout } from './fixtures/dev-server.ts';
import { applyWrite, writeOf } from './fixtures/store-writes.ts';

const test = suite('embedded SQLite store, several processes');
const root = path.resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(path.join(tmpdir(), 'store-sqlite-'));
let store: Store;

interface Writer {
  process: ChildProcess;
  acked: number[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once `n` writes were acknowledged. */
  acks(n: number): Promise<void>;
}

/** A process (test/fixtures/store-writer.ts) making `count` writes (0: until killed), `concurrency` at a time. */
function startWriter(name: string, count: number, concurrency = 4): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/store-writer.ts', dataDir, name, String(count), String(concurrency)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: number[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  let pending = '';
  child.stdout!.on('data', (chunk) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.startsWith('ack ')) acked.push(Number(line.slice(4)));
    for (const wait of waiting.filter((w) => acked.length >= w.n)) wait.resolve();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    process: child,
    acked,
    exited,
    acks: (n) => (acked.length >= n ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve }))),
  };
}

/** Every chunk in the store, in id order. */
async function allChunks(): Promise<StoredChunk[]> {
  const chunks: StoredChunk[] = [];
  for (let after = 0; ; ) {
    const page = await store.chunksSince(after, 'm1', 1_000);
    if (!page.length) return chunks;
    chunks.push(...page);
    after = page[page.length - 1].id;
  }
}

/** Each acknowledged write of `name` is in the store, whole (a document with both its chunks and vectors). */
async function assertAcknowledged(name: string, acked: number[]): Promise<void> {
  const messages = new Set((await store.chatHistory('anonymous', { session_id: name, limit: 100_000 })).map((m) => m.content));
  const documents = new Map((await store.listDocuments('anonymous', { limit: 100_000, offset: 0 })).documents.map((d) => [d.id, d]));
  const chunks = await allChunks();
  for (const i of acked) {
    const write = writeOf(name, i);
    if (write.kind === 'message') {
      assert.ok(messages.has(write.content), `acknowledged message ${write.content} is stored`);
      continue;
    }
    const { id } = write.document;
    assert.is(documents.get(id)?.chunks, 2, `acknowledged document ${id} is stored with its two chunks`);
    const stored = chunks.filter((chunk) => chunk.document_id === id);
    assert.equal(stored.map((chunk) => Array.from(chunk.vector ?? [])), [[i, 0], [i, 1]], `${id}'s vectors`);
  }
  // What was not acknowledged may be there or not, but never in part.
  for (const document of documents.values()) assert.is(document.chunks, 2, `${document.id} is whole`);
}

test.before(async () => {
  store = await openStore({ dataDir });
});

test.after(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('the file is in WAL mode, commits are fsynced (synchronous=FULL), foreign keys are on', async () => {
  const db = (store as SqlStore).db;
  assert.equal(await db.query('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
  assert.equal(await db.query('PRAGMA synchronous'), [{ synchronous: 2 }]);
  assert.equal(await db.query('PRAGMA foreign_keys'), [{ foreign_keys: 1 }]);
});

test('two more opens, one in this process and one in another, while this one is open: all three write at once', async () => {
  const again = await openStore({ dataDir });
  const other = startWriter('other-process', 40);
  try {
    await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => applyWrite(store, 'first', writeOf('first', i))),
      ...Array.from({ length: 40 }, (_, i) => applyWrite(again, 'second', writeOf('second', i))),
    ]);
    assert.equal(await withTimeout(other.exited, 60_000, 'the other process to finish'), { code: 0, signal: null });
  } finally {
    await again.close();
  }
  for (const name of ['first', 'second']) await assertAcknowledged(name, [...Array(40).keys()]);
  await assertAcknowledged('other-process', other.acked);
  assert.is(other.acked.length, 40);
});

test('two processes writing while a third follows new chunk ids: nothing is lost, and the follower misses none', async () => {
  const writers = [startWriter('writer-a', 200), startWriter('writer-b', 200)];
  const seen = new Set<number>();
  let last = (await allChunks()).at(-1)?.id ?? 0;
  const before = new Set((await allChunks()).map((chunk) => chunk.id));
  let running = true;
  const done = Promise.all(writers.map((w) => w.exited)).then((exits) => ((running = false), exits));
  // A search index follows "id > last seen": with ids committed out of order it would skip some for good.
  while (running) {
    for (const chunk of await store.chunksSince(last, 'm1', 1_000)) {
      seen.add(chunk.id);
      last = chunk.id;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  for (const chunk of await store.chunksSince(last, 'm1', 100_000)) seen.add(chunk.id);
  for (const exit of await withTimeout(done, 120_000, 'the writers to finish')) assert.equal(exit, { code: 0, signal: null });

  for (const writer of writers) assert.is(writer.acked.length, 200);
  await assertAcknowledged('writer-a', writers[0].acked);
  await assertAcknowledged('writer-b', writers[1].acked);
  const added = (await allChunks()).map((chunk) => chunk.id).filter((id) => !before.has(id));
  assert.is(added.length, 2 * 2 * 50, 'two chunks for each of the 50 documents of each writer');
  assert.equal(added.filter((id) => !seen.has(id)), [], 'the follower saw every new chunk');
});

test('kill -9 with writes in flight, five times: every acknowledged write is there, and the next open and write succeed', async () => {
  for (let round = 0; round < 5; round++) {
    const name = `killed-${round}`;
    const writer = startWriter(name, 0, 4);
    // Wait for a varying number of acknowledged writes, so the kill lands at different points of a write.
    await withTimeout(writer.acks(20 + round * 17), 60_000, `${name} to write`);
    writer.process.kill('SIGKILL');
    assert.equal(await writer.exited, { code: null, signal: 'SIGKILL' });
    // No lock outlives the process: this process writes at once (the next round's writer opens the store anew).
    const started = performance.now();
    await store.setSetting('anonymous', 'after-kill', round);
    assert.ok(performance.now() - started < 1_000, `a write right after the kill took ${Math.round(performance.now() - started)} ms`);
    await assertAcknowledged(name, writer.acked);
    const stored = (await store.chatHistory('anonymous', { session_id: name, limit: 100_000 })).length;
    console.log(`  round ${round}: ${writer.acked.length} acknowledged, ${stored} messages stored`);
  }
  const reopened = await openStore({ dataDir });
  try {
    assert.is(await reopened.getSetting('anonymous', 'after-kill'), 4);
  } finally {
    await reopened.close();
  }
});

test('the server killed (SIGKILL) right after it answered, three times: each answered save is there on the next start', async () => {
  const serverDir = mkdtempSync(path.join(tmpdir(), 'store-sqlite-server-'));
  try {
    const answered: string[] = [];
    for (let round = 0; round < 3; round++) {
      const server = await startDevServer({ TABAGENT_DATA_DIR: serverDir, TABAGENT_UPSTREAM_URL: 'off', TABAGENT_PEER_PROCESSES: '0' });
      const socket = await WebSocketClient.connect(`${server.url.replace('http', 'ws')}/v1/ws`);
      const killed = server.exited;
      // Saves keep going out; the kill comes the moment the 30th answer of this round arrives, others in flight.
      let count = 0;
      const saves = Array.from({ length: 60 }, (_, i) => {
        const content = `round ${round} message ${i}`;
        return socket
          .request({ action: 'save_message', session_id: 'killed-server', message: { role: 'user', content } })
          .then(({ frame }) => {
            if (frame.type !== 'message_saved') return;
            answered.push(content);
            if (++count === 30) server.process.kill('SIGKILL');
          }, () => {});
      });
      await Promise.all(saves);
      assert.is(await killed, null, 'killed, not exited');
    }
    const server = await startDevServer({ TABAGENT_DATA_DIR: serverDir, TABAGENT_UPSTREAM_URL: 'off', TABAGENT_PEER_PROCESSES: '0' });
    try {
      const socket = await WebSocketClient.connect(`${server.url.replace('http', 'ws')}/v1/ws`);
      const { frame } = await socket.request({ action: 'chat_history', session_id: 'killed-server', limit: 10_000 });
      const stored = new Set((frame.messages as { content: string }[]).map((m) => m.content));
      assert.equal(answered.filter((content) => !stored.has(content)), [], `all ${answered.length} answered saves are stored`);
      console.log(`  server killed 3 times: ${answered.length} saves answered, ${stored.size} stored`);
      await socket.close();
    } finally {
      server.process.kill('SIGTERM');
      await server.exited;
    }
  } finally {
    rmSync(serverDir, { recursive: true, force: true });
  }
});

test.run();
