/**
 * The store on both backends, one suite run twice: the embedded SQLite (a temp directory) and PostgreSQL when
 * TEST_DATABASE_URL names a server (`export TEST_DATABASE_URL="$(bash .ci/postgres.sh)"`). Each PostgreSQL run works
 * in schemas of its own (`search_path` in the URL), dropped at the end. In CI a missing TEST_DATABASE_URL fails the
 * PostgreSQL half; elsewhere it is skipped with a line saying so.
 */
import { tmpdir } from 'node:os';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError } from '../src/errors.ts';
import type { Db } from '../src/store/db.ts';
import { postgres, sqlite } from '../src/store/dialect.ts';
import { openStore } from '../src/store/index.ts';
import { MIGRATIONS } from '../src/store/migrations.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import type { DocumentWrite, Store } from '../src/store/types.ts';
import { storeBackends, type StoreBackend as Backend } from './fixtures/store.ts';

/** Whose rows these tests write, but for the test of owners (the anonymous one's, as without API keys). */
const OWNER = 'anonymous';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TABLES = ['settings', 'messages', 'documents', 'chunks', 'vectors', 'deletions'];

/** A document with `chunks` chunks, each with a vector per model (`[ordinal, i]` so values are checkable). */
function doc(id: string, chunks: number, models: string[] = ['m1'], extra: Partial<DocumentWrite> = {}): DocumentWrite {
  return {
    id,
    content: `content of ${id}`,
    metadata: { id, n: chunks },
    source: 'document',
    chunks: Array.from({ length: chunks }, (_, ordinal) => ({
      content: `chunk ${ordinal} of ${id}`,
      vectors: models.map((model, i) => ({ model, vector: new Float32Array([ordinal, i, 0.5, -1]) })),
    })),
    ...extra,
  };
}

async function rejects(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, AppError, `an AppError, got ${String(error)}`);
    const appError = error as AppError;
    assert.is(appError.code, code, appError.message);
    if (pattern) assert.match(appError.message, pattern);
    return appError;
  }
  assert.unreachable(`expected a ${code} rejection, but it resolved`);
  throw new Error('unreachable');
}

function defineSuite(backend: Backend) {
  const test = suite(`store on ${backend.name}`);
  let store: SqlStore;
  const open = async (options = backend.options()) => {
    const opened = await openStore(options);
    assert.instance(opened, SqlStore);
    return opened as SqlStore;
  };

  test.before(async () => {
    await backend.init?.();
    const started = performance.now();
    store = await open();
    console.log(`  ${backend.name}: opened in ${Math.round(performance.now() - started)} ms`);
  });
  test.before.each(async () => {
    // Every test starts empty; ids keep growing (sequences are not reset), as they do in production.
    for (const table of TABLES) await store.db.exec(`DELETE FROM ${table}`);
  });
  test.after(async () => {
    await store?.close();
    await backend.cleanup();
  });

  test('opening applies every migration once, and reopening applies none', async () => {
    assert.is(store.kind, backend.kind);
    const before = await store.db.query<{ version: number; applied_at: unknown }>('SELECT version, applied_at FROM schema_migrations ORDER BY version');
    assert.equal(before.map((row) => Number(row.version)), MIGRATIONS[store.db.dialect.name].map((m) => m.version));
    await store.close();
    store = await open();
    const after = await store.db.query<{ version: number; applied_at: unknown }>('SELECT version, applied_at FROM schema_migrations ORDER BY version');
    assert.equal(after, before, 'same rows, same applied_at');
    for (const table of TABLES) assert.equal(await store.db.query(`SELECT CAST(count(*) AS integer) AS n FROM ${table}`), [{ n: 0 }]);
  });

  test('settings round-trip any JSON value; a missing key is undefined; undefined removes', async () => {
    const value = { n: 1.5, big: 2 ** 40, neg: -3, yes: true, no: false, nil: null, text: 'é "q" \\ \n😀', list: [1, 'a', [true]], nested: { deep: { x: [] } } };
    await store.setSetting(OWNER, 'inference', value);
    assert.equal(await store.getSetting(OWNER, 'inference'), value);
    await store.setSetting(OWNER, 'inference', [1, 2]);
    assert.equal(await store.getSetting(OWNER, 'inference'), [1, 2]);
    for (const scalar of [0, 'text', false, null]) {
      await store.setSetting(OWNER, 'scalar', scalar);
      assert.is(await store.getSetting(OWNER, 'scalar'), scalar);
    }
    assert.is(await store.getSetting(OWNER, 'missing'), undefined);
    await store.setSetting(OWNER, 'scalar', undefined);
    assert.is(await store.getSetting(OWNER, 'scalar'), undefined);
  });

  test('messages: history per session and across sessions, oldest first; limit keeps the newest', async () => {
    const saved = [];
    for (let i = 0; i < 6; i++) {
      const session_id = i % 2 ? 'b' : 'a';
      const metadata = i === 0 ? { tokens: 3, tool: { name: 'x', ok: true } } : undefined;
      saved.push(await store.saveMessage(OWNER, { session_id, role: i % 2 ? 'assistant' : 'user', content: `message ${i}`, metadata }));
    }
    assert.is(new Set(saved.map((m) => m.id)).size, 6, 'ids are unique');
    for (const message of saved) assert.match(message.created_at, ISO);
    assert.equal(saved[0].metadata, { tokens: 3, tool: { name: 'x', ok: true } });
    assert.not.ok('metadata' in saved[1], 'no metadata key when none was given');

    const a = await store.chatHistory(OWNER, { session_id: 'a', limit: 100 });
    assert.equal(a.map((m) => m.content), ['message 0', 'message 2', 'message 4']);
    assert.equal(a[0], saved[0], 'what history returns is what saveMessage returned');
    assert.equal((await store.chatHistory(OWNER, { session_id: 'a', limit: 2 })).map((m) => m.content), ['message 2', 'message 4']);
    assert.equal((await store.chatHistory(OWNER, { limit: 100 })).map((m) => m.content), saved.map((m) => m.content));
    assert.equal((await store.chatHistory(OWNER, { limit: 3 })).map((m) => m.content), ['message 3', 'message 4', 'message 5']);
    assert.equal(await store.chatHistory(OWNER, { session_id: 'none', limit: 10 }), []);
    assert.equal(await store.chatHistory(OWNER, { limit: 0 }), []);
  });

  test('documents: add with chunks and vectors, list (total, paging, source), replace the same id, delete', async () => {
    await store.addDocuments(OWNER, [doc('d1', 2), doc('d2', 1), doc('m1', 3, ['m1'], { source: 'message', metadata: { role: 'user', nested: { a: [1, 2] }, flag: false } })]);
    await store.addDocuments(OWNER, [doc('d3', 0)]);
    const all = await store.listDocuments(OWNER, { limit: 10, offset: 0 });
    assert.is(all.total, 4);
    assert.equal(all.documents.map((d) => d.id), ['d3', 'm1', 'd2', 'd1'], 'newest first');
    assert.equal(all.documents.map((d) => d.chunks), [0, 3, 1, 2]);
    const m1 = all.documents[1];
    assert.equal(m1, { id: 'm1', content: 'content of m1', metadata: { role: 'user', nested: { a: [1, 2] }, flag: false }, source: 'message', created_at: m1.created_at, chunks: 3 });
    assert.match(m1.created_at, ISO);

    const page = await store.listDocuments(OWNER, { limit: 2, offset: 1 });
    assert.equal([page.total, page.documents.map((d) => d.id)], [4, ['m1', 'd2']]);
    assert.equal((await store.listDocuments(OWNER, { limit: 2, offset: 4 })).documents, []);
    const messages = await store.listDocuments(OWNER, { limit: 10, offset: 0, source: 'message' });
    assert.equal([messages.total, messages.documents.map((d) => d.id)], [1, ['m1']]);
    const documents = await store.listDocuments(OWNER, { limit: 1, offset: 0, source: 'document' });
    assert.equal([documents.total, documents.documents.map((d) => d.id)], [3, ['d3']]);

    await store.addDocuments(OWNER, [{ ...doc('d1', 1), content: 'new content', metadata: { v: 2 } }]);
    const replaced = await store.listDocuments(OWNER, { limit: 10, offset: 0 });
    assert.is(replaced.total, 4);
    assert.equal(replaced.documents[0], { ...replaced.documents[0], id: 'd1', content: 'new content', metadata: { v: 2 }, chunks: 1 });
    const chunks = await store.chunksSince(0, 'm1', 100);
    assert.equal(chunks.filter((c) => c.document_id === 'd1').map((c) => c.ordinal), [0], 'the old chunks are gone');

    assert.is(await store.deleteDocuments(OWNER, ['d1', 'm1', 'nope', 'd1']), 2, 'counts the ones that existed');
    const left = await store.listDocuments(OWNER, { limit: 10, offset: 0 });
    assert.equal([left.total, left.documents.map((d) => d.id)], [2, ['d3', 'd2']]);
    assert.equal((await store.chunksSince(0, 'm1', 100)).map((c) => c.document_id), ['d2'], 'chunks went with their documents');
    assert.equal(await store.db.query('SELECT CAST(count(*) AS integer) AS n FROM vectors'), [{ n: 1 }], 'vectors too');
    assert.is(await store.deleteDocuments(OWNER, []), 0);
    assert.is(await store.deleteDocuments(OWNER, ['nope']), 0);
  });

  test('chunksSince follows new chunks in id order, with the asked model\'s vectors only', async () => {
    const start = await store.chunksSince(0, 'm1', 10);
    assert.equal(start, []);
    await store.addDocuments(OWNER, [doc('a', 2, ['m1', 'm2']), { ...doc('b', 1, ['m2']), metadata: { tag: 'b' } }]);
    const first = await store.chunksSince(0, 'm1', 10);
    assert.is(first.length, 3);
    assert.ok(first[0].id < first[1].id && first[1].id < first[2].id, 'ids grow');
    assert.equal(first.map((c) => [c.document_id, c.ordinal, c.content]), [['a', 0, 'chunk 0 of a'], ['a', 1, 'chunk 1 of a'], ['b', 0, 'chunk 0 of b']]);
    assert.equal(first[0].metadata, { id: 'a', n: 2 });
    assert.equal(first[2].metadata, { tag: 'b' });
    assert.is(first[0].source, 'document');
    assert.instance(first[1].vector, Float32Array);
    assert.equal(Array.from(first[1].vector!), [1, 0, 0.5, -1], 'm1 is the first model: [ordinal, 0, .5, -1]');
    assert.not.ok('vector' in first[2], 'b has no m1 vector');
    const m2 = await store.chunksSince(0, 'm2', 10);
    assert.equal(m2.map((c) => Array.from(c.vector!)), [[0, 1, 0.5, -1], [1, 1, 0.5, -1], [0, 0, 0.5, -1]]);
    assert.equal((await store.chunksSince(0, 'other', 10)).map((c) => 'vector' in c), [false, false, false]);

    // Paging, and following only what is new.
    const page = await store.chunksSince(0, 'm1', 2);
    assert.equal(page.map((c) => c.id), first.slice(0, 2).map((c) => c.id));
    const last = first[2].id;
    assert.equal(await store.chunksSince(last, 'm1', 10), []);
    await store.addDocuments(OWNER, [doc('c', 1)]);
    const next = await store.chunksSince(last, 'm1', 10);
    assert.equal(next.map((c) => c.document_id), ['c']);
    assert.ok(next[0].id > last);
  });

  test('a deleted highest id is never handed out again (a follower of "id > last seen" would miss the new row)', async () => {
    await store.addDocuments(OWNER, [doc('first', 2)]);
    const highest = (await store.chunksSince(0, 'm1', 10)).at(-1)!.id;
    await store.deleteDocuments(OWNER, ['first']);
    const deletion = (await store.deletionsSince(0)).at(-1)!;
    await store.deleteDocuments(OWNER, ['nothing']);
    await store.addDocuments(OWNER, [doc('next', 1)]);
    const [next] = await store.chunksSince(0, 'm1', 10);
    assert.ok(next.id > highest, `new chunk id ${next.id} > deleted ${highest}`);
    await store.addDocuments(OWNER, [doc('next', 1)]);
    assert.ok((await store.deletionsSince(0)).at(-1)!.seq > deletion.seq);
  });

  test('deletionsSince reports replacements and deletions with the highest chunk id they had', async () => {
    const cursor = (await store.deletionsSince(0)).at(-1)?.seq ?? 0;
    assert.equal(await store.deletionsSince(cursor), []);
    await store.addDocuments(OWNER, [doc('x', 3), doc('y', 1), doc('empty', 0)]);
    const chunks = await store.chunksSince(0, 'm1', 100);
    const maxOf = (id: string) => Math.max(...chunks.filter((c) => c.document_id === id).map((c) => c.id));
    await store.addDocuments(OWNER, [doc('x', 1)]);
    await store.deleteDocuments(OWNER, ['y', 'empty']);
    const deletions = await store.deletionsSince(cursor);
    assert.equal(
      deletions.map((d) => [d.document_id, d.up_to_chunk_id]),
      [['x', maxOf('x')], ['y', maxOf('y')], ['empty', 0]],
    );
    assert.ok(deletions[0].seq > cursor && deletions[0].seq < deletions[1].seq && deletions[1].seq < deletions[2].seq);
    assert.equal(await store.deletionsSince(deletions[2].seq), []);
    assert.equal((await store.deletionsSince(deletions[0].seq)).map((d) => d.document_id), ['y', 'empty']);
    // The replacement's new chunk is above what the deletion covers, so an index keeps it.
    const x = (await store.chunksSince(0, 'm1', 100)).filter((c) => c.document_id === 'x');
    assert.is(x.length, 1);
    assert.ok(x[0].id > deletions[0].up_to_chunk_id);
  });

  test('putVectors adds and overwrites vectors of a model; exact bytes, any alignment; gone chunks are skipped', async () => {
    await store.addDocuments(OWNER, [doc('p', 2, [])]);
    const chunks = await store.chunksSince(0, 'late', 10);
    assert.equal(chunks.map((c) => 'vector' in c), [false, false]);
    // A view at an odd offset of a bigger buffer, and values whose bytes must survive exactly.
    const backing = new ArrayBuffer(4 * 7);
    const special = new Float32Array(backing, 4, 5);
    special.set([-0, Infinity, -Infinity, 1.401298464324817e-45, 3.4028234663852886e38]);
    const nan = new Float32Array([NaN, 1]);
    await store.putVectors('late', [
      { chunk_id: chunks[0].id, vector: special },
      { chunk_id: chunks[1].id, vector: nan },
      { chunk_id: chunks[1].id + 1_000_000, vector: nan },
    ]);
    const stored = await store.chunksSince(0, 'late', 10);
    const bytes = (v: Float32Array) => Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    assert.equal(bytes(stored[0].vector!), bytes(special));
    assert.ok(Object.is(stored[0].vector![0], -0));
    assert.ok(Number.isNaN(stored[1].vector![0]) && stored[1].vector![1] === 1);
    assert.is(stored[0].vector!.byteOffset, 0, 'a fresh, aligned array');
    await store.putVectors('late', [{ chunk_id: chunks[0].id, vector: new Float32Array([9, 9]) }]);
    assert.equal(Array.from((await store.chunksSince(0, 'late', 1))[0].vector!), [9, 9]);
    assert.is((await store.chunksSince(0, 'm1', 10)).filter((c) => c.vector).length, 0, 'other models untouched');
    await store.putVectors('late', []);
  });

  test('text survives exactly: quotes, backslashes, newlines, emoji; lone surrogates become U+FFFD', async () => {
    const text = 'a "quoted" \\ back\\slash\n\ttab 😀 é ∑ \u2028 {"json": [1]} \'single\' $1 ::text';
    await store.addDocuments(OWNER, [{ id: 'ü "odd" id', content: text, metadata: { text }, source: 'document', chunks: [{ content: text, vectors: [] }] }]);
    const [listed] = (await store.listDocuments(OWNER, { limit: 1, offset: 0 })).documents;
    assert.equal([listed.id, listed.content, listed.metadata], ['ü "odd" id', text, { text }]);
    assert.is((await store.chunksSince(0, 'm', 1))[0].content, text);
    const message = await store.saveMessage(OWNER, { session_id: 's', role: 'user', content: 'lone \ud800 surrogate', metadata: { x: 'also \udc00' } });
    const [back] = await store.chatHistory(OWNER, { session_id: 's', limit: 1 });
    assert.equal([back.content, back.metadata], ['lone \ufffd surrogate', { x: 'also \ufffd' }]);
    assert.equal(back, message);
  });

  // STORE_BULK_DOCS=10000 measures the 10k-document ingest.
  const bulk = Number(process.env.STORE_BULK_DOCS) || 2_500;
  test(`many documents at once (${bulk}): batched inserts keep every chunk, in order; replace and delete stay fast`, async () => {
    const docs = Array.from({ length: bulk }, (_, i) => ({
      ...doc(`bulk-${i}`, 1 + (i % 3)),
      chunks: Array.from({ length: 1 + (i % 3) }, (_, ordinal) => ({
        content: `bulk ${i}.${ordinal}`,
        vectors: [{ model: 'm1', vector: Float32Array.from({ length: 512 }, (_, k) => i + ordinal / 10 + k) }],
      })),
    }));
    const chunkCount = docs.reduce((n, d) => n + d.chunks.length, 0);
    let started = performance.now();
    await store.addDocuments(OWNER, docs);
    const addMs = Math.round(performance.now() - started);
    started = performance.now();
    const chunks: Awaited<ReturnType<Store['chunksSince']>> = [];
    for (let after = 0; ; ) {
      const page = await store.chunksSince(after, 'm1', 2_000);
      if (!page.length) break;
      chunks.push(...page);
      after = page.at(-1)!.id;
    }
    const readMs = Math.round(performance.now() - started);
    assert.is(chunks.length, chunkCount);
    assert.equal(
      chunks.map((c) => c.content),
      docs.flatMap((d) => d.chunks.map((c) => c.content)),
      'chunk ids follow the order of the documents and their chunks',
    );
    const sample = chunks[Math.floor(chunks.length * 0.8)];
    const [i, ordinal] = sample.content.slice(5).split('.').map(Number);
    assert.is(sample.vector!.length, 512);
    assert.is(sample.vector![7], Math.fround(i + ordinal / 10 + 7));
    assert.is((await store.listDocuments(OWNER, { limit: 1, offset: 0 })).total, bulk);

    started = performance.now();
    await store.addDocuments(OWNER, docs.slice(0, 1_000));
    const replaceMs = Math.round(performance.now() - started);
    started = performance.now();
    assert.is(await store.deleteDocuments(OWNER, docs.map((d) => d.id)), bulk);
    const deleteMs = Math.round(performance.now() - started);
    assert.is((await store.deletionsSince(0)).length, bulk + 1_000);
    console.log(
      `  ${backend.name}: ${bulk} documents, ${chunkCount} chunks with 512-dim vectors: stored in ${addMs} ms (one call), ` +
        `read back in ${readMs} ms; 1,000 replaced in ${replaceMs} ms; all deleted in ${deleteMs} ms`,
    );
  });

  test('concurrent calls on one store all land', async () => {
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => store.saveMessage(OWNER, { session_id: 'c', role: 'user', content: `m${i}` })),
      ...Array.from({ length: 5 }, (_, i) => store.addDocuments(OWNER, [doc(`c${i}`, 2)])),
      store.setSetting(OWNER, 'k', 1),
      store.addDocuments(OWNER, [doc('c0', 1)]),
    ]);
    assert.is((await store.chatHistory(OWNER, { session_id: 'c', limit: 100 })).length, 20);
    assert.is((await store.listDocuments(OWNER, { limit: 100, offset: 0 })).total, 5);
  });

  test('bad input is invalid_request, and a call with any bad document writes nothing', async () => {
    const long = 'x'.repeat(513);
    await rejects(store.addDocuments(OWNER, [doc(long, 1)]), 'invalid_request', /longer than 512/);
    await rejects(store.addDocuments(OWNER, [doc('ok', 1), doc('', 1)]), 'invalid_request', /document id/);
    await rejects(store.addDocuments(OWNER, [doc('ok', 1), doc('ok', 1)]), 'invalid_request', /twice/);
    await rejects(store.addDocuments(OWNER, [{ ...doc('ok', 1), source: 'web' as never }]), 'invalid_request', /source/);
    await rejects(store.addDocuments(OWNER, [{ ...doc('ok', 1), metadata: [] as never }]), 'invalid_request', /metadata/);
    await rejects(store.addDocuments(OWNER, [{ ...doc('ok', 1), content: 'nul \0 byte' }]), 'invalid_request', /NUL/);
    await rejects(store.addDocuments(OWNER, [{ ...doc('ok', 1), metadata: { a: 'nul \0' } }]), 'invalid_request', /NUL/);
    await rejects(store.addDocuments(OWNER, [{ ...doc('ok', 1), metadata: { big: 1n } }]), 'invalid_request', /JSON/);
    const badVector = doc('ok', 1);
    badVector.chunks[0].vectors = [{ model: 'm1', vector: [1, 2] as never }];
    await rejects(store.addDocuments(OWNER, [badVector]), 'invalid_request', /Float32Array/);
    const twoVectors = doc('ok', 1, ['m1', 'm1']);
    await rejects(store.addDocuments(OWNER, [twoVectors]), 'invalid_request', /two vectors/);
    await rejects(store.deleteDocuments(OWNER, [long]), 'invalid_request', /longer than 512/);
    await rejects(store.saveMessage(OWNER, { session_id: long, role: 'user', content: 'x' }), 'invalid_request', /session_id/);
    await rejects(store.saveMessage(OWNER, { session_id: 's', role: 'user', content: 5 as never }), 'invalid_request');
    await rejects(store.chatHistory(OWNER, { session_id: long, limit: 1 }), 'invalid_request');
    await rejects(store.chatHistory(OWNER, { limit: -1 }), 'invalid_request', /limit/);
    await rejects(store.chatHistory(OWNER, { limit: 1.5 }), 'invalid_request', /limit/);
    await rejects(store.listDocuments(OWNER, { limit: 10, offset: 0, source: 'web' as never }), 'invalid_request');
    await rejects(store.setSetting(OWNER, long, 1), 'invalid_request', /setting key/);
    await rejects(store.getSetting(OWNER, ''), 'invalid_request');
    await rejects(store.chunksSince(0, long, 10), 'invalid_request', /model/);
    await rejects(store.putVectors('m', [{ chunk_id: 1.5, vector: new Float32Array(1) }]), 'invalid_request', /chunk_id/);
    await rejects(store.putVectors('m', [{ chunk_id: 1, vector: new Float32Array(0) }]), 'invalid_request', /empty/);
    assert.is((await store.listDocuments(OWNER, { limit: 10, offset: 0 })).total, 0, 'nothing was written');
  });

  test('data persists across close and reopen', async () => {
    await store.setSetting(OWNER, 'kept', { a: 1 });
    const message = await store.saveMessage(OWNER, { session_id: 'p', role: 'user', content: 'remember me', metadata: { k: [1] } });
    await store.addDocuments(OWNER, [doc('kept', 2, ['m1', 'm2'])]);
    const chunks = await store.chunksSince(0, 'm2', 10);
    await store.close();
    store = await open();
    assert.equal(await store.getSetting(OWNER, 'kept'), { a: 1 });
    assert.equal(await store.chatHistory(OWNER, { session_id: 'p', limit: 10 }), [message]);
    assert.equal(await store.chunksSince(0, 'm2', 10), chunks);
    assert.is((await store.listDocuments(OWNER, { limit: 10, offset: 0 })).documents[0].chunks, 2);
  });

  test('owners: each owner reads, lists, replaces and deletes only its own rows, even under the same ids', async () => {
    const [a, b] = ['key-a-id', 'key-b-id'];
    await store.addDocuments(a, [doc('same', 2), doc('only-a', 1)]);
    await store.addDocuments(b, [{ ...doc('same', 1), content: 'b version' }]);
    const listed = async (owner: string) => (await store.listDocuments(owner, { limit: 10, offset: 0 })).documents.map((d) => [d.id, d.content]);
    assert.equal(await listed(a), [['only-a', 'content of only-a'], ['same', 'content of same']]);
    assert.equal(await listed(b), [['same', 'b version']], 'the same id is another document');
    assert.equal(await listed(OWNER), []);
    assert.is(await store.deleteDocuments(b, ['only-a']), 0, "another owner's id is not there to delete");
    assert.is(await store.deleteDocuments(b, ['same']), 1);
    assert.equal(await listed(a), [['only-a', 'content of only-a'], ['same', 'content of same']], "a's survive b's delete");
    const chunks = await store.chunksSince(0, 'm1', 100);
    assert.equal(chunks.map((c) => [c.owner, c.document_id]), [[a, 'same'], [a, 'same'], [a, 'only-a']], "b's chunks went with its document");
    assert.equal((await store.deletionsSince(0)).map((d) => [d.owner, d.document_id]), [[b, 'same']]);

    await store.saveMessage(a, { session_id: 's', role: 'user', content: 'from a' });
    await store.saveMessage(b, { session_id: 's', role: 'user', content: 'from b' });
    assert.equal((await store.chatHistory(a, { session_id: 's', limit: 10 })).map((m) => m.content), ['from a']);
    assert.equal((await store.chatHistory(b, { limit: 10 })).map((m) => m.content), ['from b']);

    await store.setSetting(a, 'default_model', 'model-a');
    assert.is(await store.getSetting(b, 'default_model'), undefined);
    await store.setSetting(b, 'default_model', 'model-b');
    assert.equal([await store.getSetting(a, 'default_model'), await store.getSetting(b, 'default_model')], ['model-a', 'model-b']);
  });

  if (backend.kind === 'postgres') {
    // SQLite stores begin at the owners' schema; the embedded stores from before owners were PGlite ones, which
    // the import brings through this same step (test/store-import.test.ts). SQLite's own cases: test/store-sqlite.test.ts.
    test('migration 2 gives every earlier row to the anonymous owner, and the server params to the shared one', async () => {
      const options = await backend.fresh();
      const v1 = await SqlStore.open(await openPostgres(options.databaseUrl!), MIGRATIONS.postgres.slice(0, 1));
      await v1.db.exec(`
        INSERT INTO settings (key, value) VALUES ('server_params', '{"temperature": 0.5}'), ('default_model', '"old-model"');
        INSERT INTO messages (id, session_id, role, content) VALUES ('m-1', 's', 'user', 'saved before keys');
        INSERT INTO documents (id, content, source) VALUES ('d-1', 'old document', 'document');
        INSERT INTO chunks (document_id, ordinal, content) VALUES ('d-1', 0, 'old chunk');
      `);
      await v1.close();
      const migrated = await open(options);
      try {
        assert.equal(await migrated.getSetting(OWNER, 'default_model'), 'old-model');
        assert.equal(await migrated.getSetting('*', 'server_params'), { temperature: 0.5 });
        assert.is(await migrated.getSetting(OWNER, 'server_params'), undefined);
        assert.equal((await migrated.chatHistory(OWNER, { limit: 5 })).map((m) => m.content), ['saved before keys']);
        assert.equal((await migrated.listDocuments(OWNER, { limit: 5, offset: 0 })).documents.map((d) => [d.id, d.chunks]), [['d-1', 1]]);
        assert.equal((await migrated.chunksSince(0, 'm1', 5)).map((c) => [c.owner, c.content]), [[OWNER, 'old chunk']]);
        assert.is(await migrated.deleteDocuments(OWNER, ['d-1']), 1);
        assert.equal(await migrated.chunksSince(0, 'm1', 5), [], 'the chunk still goes with its document');
      } finally {
        await migrated.close();
      }
    });

    test('PostgreSQL: two stores on one database see each other\'s writes (several instances)', async () => {
      const other = await open();
      try {
        await store.addDocuments(OWNER, [doc('from-a', 1)]);
        await other.saveMessage(OWNER, { session_id: 'shared', role: 'user', content: 'from b' });
        await other.setSetting(OWNER, 'shared', { by: 'b' });
        assert.equal((await other.chunksSince(0, 'm1', 10)).map((c) => c.document_id), ['from-a']);
        assert.equal((await store.chatHistory(OWNER, { session_id: 'shared', limit: 5 })).map((m) => m.content), ['from b']);
        assert.equal(await store.getSetting(OWNER, 'shared'), { by: 'b' });
        await other.deleteDocuments(OWNER, ['from-a']);
        assert.equal((await store.deletionsSince(0)).map((d) => d.document_id), ['from-a']);
        // Both writing the same ids at once: the write lock serializes them, none fails, and what is left is whole.
        await Promise.all([
          store.addDocuments(OWNER, [doc('same', 2), doc('same2', 1)]),
          other.addDocuments(OWNER, [doc('same', 1), doc('same2', 2)]),
          store.addDocuments(OWNER, [doc('same', 3)]),
          other.deleteDocuments(OWNER, ['same2']),
        ]);
        const listed = (await store.listDocuments(OWNER, { limit: 10, offset: 0 })).documents;
        const chunks = await other.chunksSince(0, 'm1', 100);
        assert.ok(listed.some((d) => d.id === 'same'));
        for (const d of listed) {
          assert.equal(chunks.filter((c) => c.document_id === d.id).map((c) => c.ordinal), [...Array(d.chunks).keys()], d.id);
        }
        assert.is(chunks.length, listed.reduce((n, d) => n + d.chunks, 0));
      } finally {
        await other.close();
      }
    });

    test('PostgreSQL: instances starting together on an empty database migrate it exactly once', async () => {
      const options = await backend.fresh();
      const stores = await Promise.all([open(options), open(options), open(options)]);
      try {
        const rows = await stores[0].db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
        assert.equal(rows.map((row) => Number(row.version)), MIGRATIONS.postgres.map((m) => m.version));
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });
  }

  return test;
}

// ---- independent of the backend ----

const errors = suite('store errors');

errors('an unreachable DATABASE_URL is backend_unavailable, naming DATABASE_URL without the password', async () => {
  const error = await rejects(
    openStore({ databaseUrl: 'postgres://someone:s3cret-pw@127.0.0.1:1/nothing', dataDir: tmpdir() }),
    'backend_unavailable',
    /DATABASE_URL=postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nothing/,
  );
  assert.not.match(error.message, /s3cret/);
  const notUrl = await rejects(openStore({ databaseUrl: 'mysql://a:s3cret@h/db', dataDir: tmpdir() }), 'backend_unavailable', /DATABASE_URL/);
  assert.not.match(notUrl.message, /s3cret/);
});

errors('database failures are internal errors naming the operation, never the SQL or its values', async () => {
  const failing: Db = {
    dialect: postgres,
    query: async () => {
      throw Object.assign(new Error('relation "documents" does not exist: SELECT secret FROM documents'), { code: '42P01' });
    },
    exec: async () => {},
    transaction: async (fn) => fn(failing),
    close: async () => {},
  };
  const store = new SqlStore(failing);
  const error = await rejects(store.listDocuments(OWNER, { limit: 1, offset: 0 }), 'internal', /could not list the documents \(SQLSTATE 42P01\)/);
  assert.not.match(error.message, /SELECT|secret/);
  assert.ok(error.cause instanceof Error, 'the cause is kept for logs');
  const gone: Db = { ...failing, query: async () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) };
  await rejects(new SqlStore(gone).getSetting(OWNER, 'k'), 'backend_unavailable', /unavailable/);
});

errors('a closed store refuses calls; closing twice is fine', async () => {
  let closes = 0;
  const db: Db = { dialect: sqlite, query: async () => [], exec: async () => {}, transaction: async (fn) => fn(db), close: async () => void closes++ };
  const store = new SqlStore(db);
  await store.close();
  await store.close();
  assert.is(closes, 1);
  await rejects(store.getSetting(OWNER, 'k'), 'shutting_down', /closed/);
});

// ---- which backends run ----

const backends = storeBackends();
for (const backend of backends.available) defineSuite(backend).run();
if (backends.missing) {
  const missing = suite('store on PostgreSQL');
  missing('TEST_DATABASE_URL is set in CI', () => assert.unreachable(backends.missing));
  missing.run();
}

errors.run();
