/**
 * Earlier versions kept the embedded store in PGlite (`<dataDir>/db`). The first open of such a data directory copies
 * everything into SQLite, once, and keeps the old directory; a directory that cannot be read stops the open with a
 * message instead of an empty store. The old stores are made here with PGlite itself, at the schema of the version
 * before owners (step 1) and at the last one (step 2).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/store/index.ts';
import { MIGRATIONS, migrate } from '../src/store/migrations.ts';
import { lockPglite, openPglite } from '../src/store/pglite.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import type { Store } from '../src/store/types.ts';
import { appError } from './fixtures/errors.ts';

const test = suite('importing an earlier PGlite store');
const dirs: string[] = [];
const dataDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'store-import-'));
  dirs.push(dir);
  return dir;
};
const vector = (...values: number[]) => new Float32Array(values);
const bytes = (v: Float32Array) => Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));

/** What the old store held, as its own SqlStore read it: the import must give back exactly this. */
interface Snapshot {
  history: unknown;
  listed: unknown;
  chunks: { id: number; owner: string; document_id: string; content: string; metadata: unknown; vector?: number[] }[];
  deletions: unknown;
}

async function snapshot(store: Store, owners: string[]): Promise<Snapshot> {
  const history = await Promise.all(owners.map((owner) => store.chatHistory(owner, { limit: 100 })));
  const listed = await Promise.all(owners.map((owner) => store.listDocuments(owner, { limit: 100, offset: 0 })));
  const chunks = (await store.chunksSince(0, 'm1', 100)).map(({ id, owner, document_id, content, metadata, vector }) => ({
    id,
    owner,
    document_id,
    content,
    metadata,
    ...(vector && { vector: bytes(vector) }),
  }));
  return { history, listed, chunks, deletions: await store.deletionsSince(0) };
}

/**
 * An old store: rows written before owners existed (schema step 1), then, after step 2, rows of a key and of the
 * anonymous owner, a replaced and a deleted document (so PostgreSQL's sequences end past the highest id kept).
 */
async function makeOldStore(dir: string): Promise<{ snapshot: Snapshot; lastChunkId: number }> {
  const pglite = path.join(dir, 'db');
  const v1 = await openPglite(pglite);
  await migrate(v1, MIGRATIONS.postgres.slice(0, 1));
  await v1.exec(`
    INSERT INTO settings (key, value) VALUES ('server_params', '{"temperature": 0.5}'), ('default_model', '"old-model"');
    INSERT INTO messages (id, session_id, role, content, metadata) VALUES ('m-1', 's', 'user', 'saved before keys', '{"tokens": 3}');
    INSERT INTO documents (id, content, metadata, source) VALUES ('d-1', 'old document', '{"topic": "old"}', 'document');
    INSERT INTO chunks (document_id, ordinal, content) VALUES ('d-1', 0, 'old chunk');
  `);
  await v1.close();

  const store = await SqlStore.open(await openPglite(pglite));
  const doc = (id: string, content: string, vectors: Float32Array[]) => ({
    id,
    content,
    metadata: { id, nested: { list: [1, 'two'] } },
    source: 'document' as const,
    chunks: vectors.map((v, i) => ({ content: `${content} ${i}`, vectors: [{ model: 'm1', vector: v }] })),
  });
  await store.addDocuments('key-a', [doc('same', 'a version', [vector(1, 2), vector(-0, Infinity)]), doc('gone', 'to delete', [vector(5)])]);
  await store.addDocuments('anonymous', [doc('same', 'anonymous version', [vector(3)])]);
  await store.addDocuments('key-a', [doc('same', 'a replaced', [vector(4, 4)])]);
  await store.saveMessage('key-a', { session_id: 's', role: 'assistant', content: 'with a key', metadata: { k: ['v'] } });
  await store.setSetting('key-a', 'inference', { 'llama3.2:3b': { temperature: 0.1 } });
  await store.deleteDocuments('key-a', ['gone']);
  const result = await snapshot(store, ['anonymous', 'key-a']);
  const deletions = await store.deletionsSince(0);
  await store.close();
  return { snapshot: result, lastChunkId: Math.max(...deletions.map((d) => d.up_to_chunk_id)) };
}

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test('the first open copies every row, owner, id and timestamp into SQLite, once, and keeps the old directory', async () => {
  const dir = dataDir();
  const old = await makeOldStore(dir);
  const store = await openStore({ dataDir: dir });
  try {
    assert.equal(await snapshot(store, ['anonymous', 'key-a']), old.snapshot);
    assert.is(store.kind, 'embedded');
    assert.equal(await store.getSetting('anonymous', 'default_model'), 'old-model', 'rows from before owners are the anonymous one\'s');
    assert.equal(await store.getSetting('*', 'server_params'), { temperature: 0.5 }, 'and the server params everyone\'s');
    assert.equal(await store.getSetting('key-a', 'inference'), { 'llama3.2:3b': { temperature: 0.1 } });
    assert.equal((await store.chatHistory('anonymous', { limit: 5 }))[0].metadata, { tokens: 3 });

    // Ids go on after the highest PostgreSQL handed out, deleted ones included: the deletion logged for "gone"
    // covers its chunk id, and a new chunk under that id would be dropped with it by a search index.
    await store.addDocuments('key-a', [{ id: 'gone', content: 'back', metadata: {}, source: 'document', chunks: [{ content: 'back', vectors: [] }] }]);
    const [back] = (await store.chunksSince(0, 'm1', 100)).filter((chunk) => chunk.content === 'back');
    assert.ok(back.id > old.lastChunkId, `new chunk id ${back.id} > ${old.lastChunkId}`);
  } finally {
    await store.close();
  }
  const entries = readdirSync(dir);
  assert.not.ok(entries.includes('db'), 'the old directory was set aside');
  assert.ok(entries.some((entry) => /^db\.imported-/.test(entry)), `kept as db.imported-<time>: ${entries}`);
  assert.not.ok(entries.some((entry) => /importing|\.lock$/.test(entry)), `nothing half-done is left: ${entries}`);

  const again = await openStore({ dataDir: dir });
  try {
    assert.is((await again.listDocuments('key-a', { limit: 10, offset: 0 })).total, 2, 'the reopened store is the imported one');
  } finally {
    await again.close();
  }
  assert.is(readdirSync(dir).filter((entry) => entry.startsWith('db.imported-')).length, 1, 'imported once');
});

test('an old store another process holds is not imported, and the open says which process', async () => {
  const dir = dataDir();
  mkdirSync(path.join(dir, 'db'));
  writeFileSync(path.join(dir, 'db', 'PG_VERSION'), '17\n');
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  writeFileSync(path.join(dir, 'db.lock'), `${holder.pid}\n`);
  try {
    const error = await appError(openStore({ dataDir: dir }));
    assert.is(error.code, 'backend_unavailable');
    assert.match(error.message, `process ${holder.pid} has it open`);
    assert.match(error.message, path.join(dir, 'db'));
    assert.not.ok(existsSync(path.join(dir, 'store.sqlite')), 'no empty store in its place');
  } finally {
    holder.kill();
  }
});

test('an old store PGlite cannot open stops the open with the reason and the way out, never an empty store', async () => {
  const dir = dataDir();
  mkdirSync(path.join(dir, 'db'));
  writeFileSync(path.join(dir, 'db', 'PG_VERSION'), '17\n');
  const error = await appError(openStore({ dataDir: dir }));
  assert.is(error.code, 'backend_unavailable');
  assert.match(error.message, /Cannot import the earlier store in .*PGlite could not open it.*move it away/);
  assert.not.ok(existsSync(path.join(dir, 'store.sqlite')), 'no empty store in its place');
  assert.ok(existsSync(path.join(dir, 'db', 'PG_VERSION')), 'the old directory is left as it was');
  const lock = lockPglite(path.join(dir, 'db'));
  assert.ok('release' in lock, 'and its lock was released');
  if ('release' in lock) lock.release();
});

test.run();
