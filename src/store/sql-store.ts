/**
 * `SqlStore`: the whole store in SQL, over a small `Db` driver (PGlite or node-postgres). Both backends run exactly
 * the same statements, so everything that differs between the drivers stays out of the SQL's results:
 * - ids come back as numbers or strings (int8) and become numbers here;
 * - timestamps are formatted by the database (`to_char`, UTC) instead of parsed by a driver;
 * - vectors go in and out as base64 text (`decode`/`encode`), which both drivers pass as plain text and which is
 *   much faster on PGlite than its bytea (hex) conversion;
 * - bulk rows travel as one JSON text parameter read with `json_to_recordset`, one statement per batch.
 *
 * Writers that feed the search index (`addDocuments`, `deleteDocuments`, `putVectors`) hold one transaction-scoped
 * advisory lock, so chunk and deletion ids are committed in the order they are allocated: an index that has seen id N
 * can never later find a committed id below N (which "id > last seen" would skip), even with several instances on one
 * PostgreSQL server.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../errors.ts';
import { MIGRATIONS, migrate, type Migration } from './migrations.ts';
import {
  BATCH_CHARS,
  BATCH_ROWS,
  checkCount,
  checkCursor,
  checkId,
  checkMetadata,
  checkSource,
  checkText,
  decodeVector,
  encodeDocuments,
  encodeVector,
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

/** What the store needs from a connection (or a transaction). */
export interface Queryable {
  /** One statement with `$n` parameters (strings, numbers, booleans, null, arrays of those); the result rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Statements without parameters (several allowed, `;`-separated). */
  exec(sql: string): Promise<void>;
}

/** A database driver: PGlite (`pglite.ts`) or a PostgreSQL server (`postgres.ts`). */
export interface Db extends Queryable {
  readonly kind: 'embedded' | 'postgres';
  /** Runs `fn` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** `pg_advisory_xact_lock` key that serializes the writers feeding the search index (ASCII "tabwrit"). */
const WRITE_LOCK = '32758172837112180';


const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export class SqlStore implements Store {
  readonly kind: 'embedded' | 'postgres';
  #closed = false;

  /** Use `SqlStore.open`, which runs the migrations first. `db` is exposed for tests and diagnostics. */
  constructor(readonly db: Db) {
    this.kind = db.kind;
  }

  /** Brings the schema up to date (`MIGRATIONS`), then returns the store. Closes `db` when that fails. */
  static async open(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<SqlStore> {
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
      db.query<{ value: T }>('SELECT value FROM settings WHERE owner = $1 AND key = $2', [owner, key]),
    );
    return rows.length ? rows[0].value : undefined;
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
        `INSERT INTO settings (owner, key, value) VALUES ($1, $2, $3::text::jsonb)
         ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
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
        `INSERT INTO messages (owner, id, session_id, role, content, metadata) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
         RETURNING ${iso('created_at')} AS created_at`,
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
    const columns = `id, session_id, role, content, metadata, ${iso('created_at')} AS created_at`;
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
      if (row.metadata !== null && row.metadata !== undefined) message.metadata = row.metadata;
      return message;
    });
  }

  // ---- documents ----

  async addDocuments(owner: string, documents: DocumentWrite[]): Promise<void> {
    checkId(owner, 'owner');
    if (!Array.isArray(documents)) throw invalid('documents must be an array');
    if (!documents.length) return;
    const batches = encodeDocuments(documents);
    const ids = documents.map((document) => document.id);
    await this.#run('store the documents', (db) =>
      db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`);
        await logAndDelete(tx, owner, ids);
        for (const batch of batches) {
          await tx.query(
            `INSERT INTO documents (owner, id, content, metadata, source)
             SELECT $2, x.id, x.content, x.metadata, x.source
             FROM json_to_recordset($1::text::json) AS x(i int, id text, content text, metadata jsonb, source text)
             ORDER BY x.i`,
            [batch.documents, owner],
          );
          if (batch.chunkCount === 0) continue;
          await tx.query(
            `WITH c AS (
               INSERT INTO chunks (owner, document_id, ordinal, content)
               SELECT $3, x.d, x.o, x.c FROM json_to_recordset($1::text::json) AS x(k int, d text, o int, c text) ORDER BY x.k
               RETURNING id, document_id, ordinal
             )
             INSERT INTO vectors (chunk_id, model, vector)
             SELECT c.id, v.m, decode(v.v, 'base64')
             FROM json_to_recordset($2::text::json) AS v(d text, o int, m text, v text)
             JOIN c ON c.document_id = v.d AND c.ordinal = v.o`,
            [batch.chunks, batch.vectors, owner],
          );
        }
      }),
    );
  }

  async deleteDocuments(owner: string, ids: string[]): Promise<number> {
    checkId(owner, 'owner');
    if (!Array.isArray(ids)) throw invalid('ids must be an array');
    const unique = [...new Set(ids.map((id) => checkId(id, 'document id')))];
    if (!unique.length) return 0;
    return this.#run('delete the documents', (db) =>
      db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`);
        return logAndDelete(tx, owner, unique);
      }),
    );
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
    return this.#run('list the documents', async (db) => {
      const [rows, count] = await Promise.all([
        limit === 0
          ? Promise.resolve([] as DocumentRow[])
          : db.query<DocumentRow>(
              `SELECT d.id, d.content, d.metadata, d.source, ${iso('d.created_at')} AS created_at,
                      (SELECT count(*) FROM chunks c WHERE c.owner = d.owner AND c.document_id = d.id)::int AS chunks
               FROM documents d WHERE d.owner = $4 AND ($1::text IS NULL OR d.source = $1::text)
               ORDER BY d.seq DESC LIMIT $2 OFFSET $3`,
              [source, limit, offset, owner],
            ),
        db.query<{ total: number | string }>(
          'SELECT count(*) AS total FROM documents WHERE owner = $2 AND ($1::text IS NULL OR source = $1::text)',
          [source, owner],
        ),
      ]);
      return {
        documents: rows.map((row) => ({ ...row, chunks: Number(row.chunks) })),
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
        `SELECT c.id, c.owner, c.document_id, c.ordinal, c.content, d.metadata, d.source, encode(v.vector, 'base64') AS vector
         FROM chunks c
         JOIN documents d ON d.owner = c.owner AND d.id = c.document_id
         LEFT JOIN vectors v ON v.chunk_id = c.id AND v.model = $2
         WHERE c.id > $1::bigint
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
        metadata: row.metadata,
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
        'SELECT seq, owner, document_id, up_to_chunk_id FROM deletions WHERE seq > $1::bigint ORDER BY seq',
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
    const batches: string[] = [];
    let rows: string[] = [];
    let chars = 0;
    const seen = new Set<number>();
    for (const item of vectors) {
      if (!isObject(item)) throw invalid('each vector must be an object');
      const chunkId = checkCursor(item.chunk_id, 'chunk_id');
      if (seen.has(chunkId)) throw invalid(`chunk ${chunkId} appears twice`);
      seen.add(chunkId);
      const row = JSON.stringify({ id: chunkId, v: encodeVector(item.vector, `the vector of chunk ${chunkId}`) });
      rows.push(row);
      chars += row.length;
      if (rows.length >= BATCH_ROWS || chars >= BATCH_CHARS) {
        batches.push(`[${rows.join(',')}]`);
        rows = [];
        chars = 0;
      }
    }
    if (rows.length) batches.push(`[${rows.join(',')}]`);
    await this.#run('store vectors', (db) =>
      db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`);
        for (const batch of batches) {
          await tx.query(
            `INSERT INTO vectors (chunk_id, model, vector)
             SELECT x.id, $1, decode(x.v, 'base64')
             FROM json_to_recordset($2::text::json) AS x(id bigint, v text)
             JOIN chunks c ON c.id = x.id
             ON CONFLICT (chunk_id, model) DO UPDATE SET vector = excluded.vector`,
            [model, batch],
          );
        }
      }),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.db.close();
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
  metadata: Metadata | null;
  created_at: string;
}

type DocumentRow = StoredDocument;

interface ChunkRow {
  id: number | string;
  owner: string;
  document_id: string;
  ordinal: number;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
  vector: string | null;
}


// ---- writes ----

/** Logs a deletion (with the highest chunk id) for each existing document of the owner's `ids`, then deletes them. */
async function logAndDelete(tx: Queryable, owner: string, ids: string[]): Promise<number> {
  const logged = await tx.query<{ document_id: string }>(
    `INSERT INTO deletions (owner, document_id, up_to_chunk_id)
     SELECT d.owner, d.id, COALESCE(m.up_to, 0)
     FROM documents d
     LEFT JOIN (
       SELECT document_id, max(id) AS up_to FROM chunks WHERE owner = $2 AND document_id = ANY($1::text[]) GROUP BY document_id
     ) m ON m.document_id = d.id
     WHERE d.owner = $2 AND d.id = ANY($1::text[])
     ORDER BY d.seq
     RETURNING document_id`,
    [ids, owner],
  );
  if (logged.length) {
    await tx.query('DELETE FROM documents WHERE owner = $2 AND id = ANY($1::text[])', [logged.map((row) => row.document_id), owner]);
  }
  return logged.length;
}
