/**
 * `SqlStore`: the whole store in SQL, over a small `Db` driver: SQLite (`sqlite.ts`, embedded) or a PostgreSQL
 * server (`postgres.ts`). Every statement is written once; what the two spell differently comes from the driver's
 * `Dialect` (`dialect.ts`). What the drivers would return differently stays out of the results:
 * - ids come back as numbers or strings (PostgreSQL's int8) and become numbers here;
 * - timestamps are formatted by the database (ISO 8601, UTC, milliseconds), never parsed by a driver;
 * - JSON comes back as text and is parsed here;
 * - vectors go in as hex text and come back as bytes;
 * - bulk rows travel as one JSON text parameter, one statement per batch.
 *
 * Writers that feed the search index (`addDocuments`, `deleteDocuments`, `putVectors`) take turns: on PostgreSQL
 * under one transaction-scoped advisory lock, on SQLite under the one write lock its write transactions take as
 * they begin. So chunk and deletion ids are committed in the order they are allocated: an index that has seen id N
 * can never later find a committed id below N (which "id > last seen" would skip), even with several instances on
 * one PostgreSQL server or several processes on one SQLite file.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { Db, Queryable } from './db.ts';
import type { Dialect } from './dialect.ts';
import { migrate, type Migration } from './migrations.ts';
import {
  checkCount,
  checkCursor,
  checkId,
  checkMetadata,
  checkSource,
  checkText,
  decodeVector,
  encodeDocuments,
  encodeVectors,
  invalid,
  isObject,
  jsonText,
} from './encoding.ts';
import { databaseError } from './db-errors.ts';
import type {
  Deletion,
  DocumentSource,
  DocumentWrite,
  Metadata,
  Store,
  StoredChunk,
  StoredDocument,
  StoredMessage,
} from './types.ts';

export class SqlStore implements Store {
  readonly kind: Store['kind'];
  #closed = false;
  readonly #sql: Dialect;

  /** Use `SqlStore.open`, which runs the migrations first. `db` is exposed for tests and diagnostics. */
  constructor(readonly db: Db) {
    this.#sql = db.dialect;
    this.kind = db.dialect.name === 'sqlite' ? 'embedded' : 'postgres';
  }

  /** Brings the schema up to date (`MIGRATIONS` of its dialect), then returns the store. Closes `db` when that fails. */
  static async open(db: Db, migrations?: readonly Migration[]): Promise<SqlStore> {
    try {
      await migrate(db, migrations);
    } catch (error) {
      await db.close().catch(() => {});
      // At startup the operator needs the database's reason (e.g. "permission denied for schema public"); it names
      // objects, never values.
      const reason = error instanceof Error && (error as { code?: unknown }).code ? `: ${error.message}` : '';
      throw databaseError(`apply the schema migrations${reason}`, error);
    }
    return new SqlStore(db);
  }

  // ---- settings ----

  async getSetting<T>(owner: string, key: string): Promise<T | undefined> {
    checkId(owner, 'owner');
    checkId(key, 'setting key');
    const rows = await this.#run('read a setting', (db) =>
      db.query<{ value: string }>(`SELECT ${this.#sql.jsonText('value')} AS value FROM settings WHERE owner = $1 AND key = $2`, [owner, key]),
    );
    return rows.length ? (JSON.parse(rows[0].value) as T) : undefined;
  }

  /** Stores any JSON value; `undefined` removes the setting. */
  async setSetting(owner: string, key: string, value: unknown): Promise<void> {
    checkId(owner, 'owner');
    checkId(key, 'setting key');
    if (value === undefined) {
      await this.#run('remove a setting', (db) => db.query('DELETE FROM settings WHERE owner = $1 AND key = $2', [owner, key]));
      return;
    }
    const json = jsonText(value, 'setting value');
    await this.#run('write a setting', (db) =>
      db.query(
        `INSERT INTO settings (owner, key, value) VALUES ($1, $2, ${this.#sql.json('$3')})
         ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value, updated_at = ${this.#sql.now}`,
        [owner, key, json],
      ),
    );
  }

  // ---- chat history ----

  async saveMessage(owner: string, message: { session_id: string; role: string; content: string; metadata?: Metadata }): Promise<StoredMessage> {
    checkId(owner, 'owner');
    if (!isObject(message)) throw invalid('message must be an object');
    const session_id = checkId(message.session_id, 'session_id');
    const role = checkId(message.role, 'role');
    const content = checkText(message.content, 'message content');
    const metadata =
      message.metadata === undefined ? undefined : jsonText(checkMetadata(message.metadata, 'message metadata'), 'message metadata');
    const id = randomUUID();
    const rows = await this.#run('save a message', (db) =>
      db.query<{ created_at: string }>(
        `INSERT INTO messages (owner, id, session_id, role, content, metadata) VALUES ($1, $2, $3, $4, $5, ${this.#sql.json('$6')})
         RETURNING ${this.#sql.iso('created_at')} AS created_at`,
        [owner, id, session_id, role, content, metadata ?? null],
      ),
    );
    const saved: StoredMessage = { id, session_id, role, content, created_at: rows[0].created_at };
    if (metadata !== undefined) saved.metadata = JSON.parse(metadata) as Metadata;
    return saved;
  }

  async chatHistory(owner: string, options: { session_id?: string; limit: number }): Promise<StoredMessage[]> {
    checkId(owner, 'owner');
    if (!isObject(options)) throw invalid('options must be an object');
    const limit = checkCount(options.limit, 'limit');
    const session = options.session_id === undefined ? undefined : checkId(options.session_id, 'session_id');
    if (limit === 0) return [];
    const columns = `id, session_id, role, content, ${this.#sql.jsonText('metadata')} AS metadata, ${this.#sql.iso('created_at')} AS created_at`;
    const rows = await this.#run('read the chat history', (db) =>
      session === undefined
        ? db.query<MessageRow>(
            `SELECT ${columns} FROM (SELECT * FROM messages WHERE owner = $1 ORDER BY seq DESC LIMIT $2) m ORDER BY seq`,
            [owner, limit],
          )
        : db.query<MessageRow>(
            `SELECT ${columns} FROM (SELECT * FROM messages WHERE owner = $1 AND session_id = $2 ORDER BY seq DESC LIMIT $3) m ORDER BY seq`,
            [owner, session, limit],
          ),
    );
    return rows.map((row) => {
      const message: StoredMessage = { id: row.id, session_id: row.session_id, role: row.role, content: row.content, created_at: row.created_at };
      if (row.metadata !== null && row.metadata !== undefined) message.metadata = JSON.parse(row.metadata) as Metadata;
      return message;
    });
  }

  // ---- documents ----

  async addDocuments(owner: string, documents: DocumentWrite[]): Promise<void> {
    checkId(owner, 'owner');
    if (!Array.isArray(documents)) throw invalid('documents must be an array');
    if (!documents.length) return;
    const batches = encodeDocuments(documents);
    const ids = JSON.stringify(documents.map((document) => document.id));
    const sql = this.#sql;
    await this.#write('store the documents', async (tx) => {
      await logAndDelete(tx, sql, owner, ids);
      for (const batch of batches) {
        await tx.query(
          `INSERT INTO documents (owner, id, content, metadata, source)
           SELECT $2, x.id, x.content, x.metadata, x.source
           FROM ${sql.rows('$1', 'x', { i: 'int', id: 'text', content: 'text', metadata: 'json', source: 'text' })}
           ORDER BY x.i`,
          [batch.documents, owner],
        );
        if (batch.chunkCount === 0) continue;
        await tx.query(
          `INSERT INTO chunks (owner, document_id, ordinal, content)
           SELECT $2, x.d, x.o, x.c FROM ${sql.rows('$1', 'x', { k: 'int', d: 'text', o: 'int', c: 'text' })} ORDER BY x.k`,
          [batch.chunks, owner],
        );
        if (batch.vectorCount === 0) continue;
        // The document's old chunks were deleted above, so (owner, document, ordinal) finds exactly the new chunk.
        await tx.query(
          `INSERT INTO vectors (chunk_id, model, vector)
           SELECT c.id, v.m, ${sql.bytes('v.v')}
           FROM ${sql.rows('$1', 'v', { d: 'text', o: 'int', m: 'text', v: 'text' })}
           CROSS JOIN chunks c WHERE c.owner = $2 AND c.document_id = v.d AND c.ordinal = v.o`,
          [batch.vectors, owner],
        );
      }
    });
  }

  async deleteDocuments(owner: string, ids: string[]): Promise<number> {
    checkId(owner, 'owner');
    if (!Array.isArray(ids)) throw invalid('ids must be an array');
    const unique = [...new Set(ids.map((id) => checkId(id, 'document id')))];
    if (!unique.length) return 0;
    return this.#write('delete the documents', (tx) => logAndDelete(tx, this.#sql, owner, JSON.stringify(unique)));
  }

  /** Newest first (the order they were stored in; a replaced document counts as new). */
  async listDocuments(
    owner: string,
    options: { limit: number; offset: number; source?: DocumentSource },
  ): Promise<{ documents: StoredDocument[]; total: number }> {
    checkId(owner, 'owner');
    if (!isObject(options)) throw invalid('options must be an object');
    const limit = checkCount(options.limit, 'limit');
    const offset = checkCount(options.offset ?? 0, 'offset');
    const source = options.source === undefined ? null : checkSource(options.source);
    const sql = this.#sql;
    return this.#run('list the documents', async (db) => {
      const [rows, count] = await Promise.all([
        limit === 0
          ? Promise.resolve([] as DocumentRow[])
          : db.query<DocumentRow>(
              `SELECT d.id, d.content, ${sql.jsonText('d.metadata')} AS metadata, d.source, ${sql.iso('d.created_at')} AS created_at,
                      (SELECT CAST(count(*) AS integer) FROM chunks c WHERE c.owner = d.owner AND c.document_id = d.id) AS chunks
               FROM documents d WHERE d.owner = $4 AND (CAST($1 AS text) IS NULL OR d.source = CAST($1 AS text))
               ORDER BY d.seq DESC LIMIT $2 OFFSET $3`,
              [source, limit, offset, owner],
            ),
        db.query<{ total: number | string }>(
          'SELECT CAST(count(*) AS integer) AS total FROM documents WHERE owner = $2 AND (CAST($1 AS text) IS NULL OR source = CAST($1 AS text))',
          [source, owner],
        ),
      ]);
      return {
        documents: rows.map((row) => ({ ...row, metadata: JSON.parse(row.metadata) as Metadata, chunks: Number(row.chunks) })),
        total: Number(count[0].total),
      };
    });
  }

  // ---- what the search index follows ----

  async chunksSince(afterId: number, model: string, limit: number): Promise<StoredChunk[]> {
    const after = checkCursor(afterId, 'afterId');
    checkId(model, 'model');
    const count = checkCount(limit, 'limit');
    if (count === 0) return [];
    const rows = await this.#run('read chunks', (db) =>
      db.query<ChunkRow>(
        `SELECT c.id, c.owner, c.document_id, c.ordinal, c.content, ${this.#sql.jsonText('d.metadata')} AS metadata, d.source, v.vector
         FROM chunks c
         JOIN documents d ON d.owner = c.owner AND d.id = c.document_id
         LEFT JOIN vectors v ON v.chunk_id = c.id AND v.model = $2
         WHERE c.id > $1
         ORDER BY c.id
         LIMIT $3`,
        [after, model, count],
      ),
    );
    return rows.map((row) => {
      const chunk: StoredChunk = {
        id: Number(row.id),
        owner: row.owner,
        document_id: row.document_id,
        ordinal: row.ordinal,
        content: row.content,
        metadata: JSON.parse(row.metadata) as Metadata,
        source: row.source,
      };
      if (row.vector !== null) chunk.vector = decodeVector(row.vector);
      return chunk;
    });
  }

  async deletionsSince(afterSeq: number): Promise<Deletion[]> {
    const after = checkCursor(afterSeq, 'afterSeq');
    const rows = await this.#run('read deletions', (db) =>
      db.query<{ seq: number | string; owner: string; document_id: string; up_to_chunk_id: number | string }>(
        'SELECT seq, owner, document_id, up_to_chunk_id FROM deletions WHERE seq > $1 ORDER BY seq',
        [after],
      ),
    );
    return rows.map((row) => ({
      seq: Number(row.seq),
      owner: row.owner,
      document_id: row.document_id,
      up_to_chunk_id: Number(row.up_to_chunk_id),
    }));
  }

  /** Stores (or overwrites) vectors; those of chunks that no longer exist are skipped. */
  async putVectors(model: string, vectors: { chunk_id: number; vector: Float32Array }[]): Promise<void> {
    checkId(model, 'model');
    if (!Array.isArray(vectors)) throw invalid('vectors must be an array');
    if (!vectors.length) return;
    const batches = encodeVectors(vectors);
    const sql = this.#sql;
    await this.#write('store vectors', async (tx) => {
      for (const batch of batches) {
        await tx.query(
          `INSERT INTO vectors (chunk_id, model, vector)
           SELECT x.id, $1, ${sql.bytes('x.v')}
           FROM ${sql.rows('$2', 'x', { id: 'int', v: 'text' })}
           CROSS JOIN chunks c WHERE c.id = x.id
           ON CONFLICT (chunk_id, model) DO UPDATE SET vector = excluded.vector`,
          [model, batch],
        );
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.db.close();
  }

  /** A write transaction that feeds the search index, taking its turn (see the top of the file). */
  #write<T>(operation: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const lock = this.#sql.writeLock;
    return this.#run(operation, (db) =>
      db.transaction(async (tx) => {
        if (lock) await tx.query(lock);
        return fn(tx);
      }),
    );
  }

  /** Runs one operation, mapping driver errors to `AppError`s that name the operation and never the SQL. */
  async #run<T>(operation: string, fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.#closed) throw new AppError('shutting_down', 'The store is closed');
    try {
      return await fn(this.db);
    } catch (error) {
      throw databaseError(operation, error);
    }
  }
}

interface MessageRow {
  id: string;
  session_id: string;
  role: string;
  content: string;
  /** JSON text. */
  metadata: string | null;
  created_at: string;
}

type DocumentRow = Omit<StoredDocument, 'metadata'> & { metadata: string };

interface ChunkRow {
  id: number | string;
  owner: string;
  document_id: string;
  ordinal: number;
  content: string;
  /** JSON text. */
  metadata: string;
  source: DocumentSource;
  vector: Uint8Array | null;
}


// ---- writes ----

/**
 * Logs a deletion (with the highest chunk id) for each existing document of the owner's `ids` (a JSON array),
 * then deletes them.
 */
async function logAndDelete(tx: Queryable, sql: Dialect, owner: string, ids: string): Promise<number> {
  const logged = await tx.query<{ document_id: string }>(
    `INSERT INTO deletions (owner, document_id, up_to_chunk_id)
     SELECT d.owner, d.id, COALESCE(m.up_to, 0)
     FROM documents d
     LEFT JOIN (
       SELECT document_id, max(id) AS up_to FROM chunks WHERE owner = $2 AND document_id IN (${sql.strings('$1')}) GROUP BY document_id
     ) m ON m.document_id = d.id
     WHERE d.owner = $2 AND d.id IN (${sql.strings('$1')})
     ORDER BY d.seq
     RETURNING document_id`,
    [ids, owner],
  );
  if (logged.length) {
    await tx.query(`DELETE FROM documents WHERE owner = $2 AND id IN (${sql.strings('$1')})`, [
      JSON.stringify(logged.map((row) => row.document_id)),
      owner,
    ]);
  }
  return logged.length;
}
