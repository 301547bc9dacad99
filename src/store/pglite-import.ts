/**
 * Earlier versions kept the embedded store in a PGlite directory, `<dataDir>/db`. When the SQLite file does not
 * exist yet and such a directory does, `openStore` has its rows copied into a new SQLite file before it opens: once,
 * with every owner, id and timestamp as it was. The copy is written beside the file and renamed into place only when
 * whole; then the directory is renamed `db.imported-<time>` and kept (delete it when you no longer need it).
 *
 * Nothing is dropped silently: if the directory cannot be read, the store does not open, and the message says why.
 * Only this needs PGlite, and only then.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.ts';
import { log } from '../log.ts';
import type { Db } from './db.ts';
import { postgres } from './dialect.ts';
import { MIGRATIONS, migrate } from './migrations.ts';
import { lockPglite, openPglite } from './pglite.ts';
import { openSqlite } from './sqlite.ts';

/** Where earlier versions kept the embedded store, in the data directory. */
export const PGLITE_DIR = 'db';

/** Rows read from PGlite and written to SQLite per transaction. */
const PAGE = 1_000;

/**
 * Each table: its key (rows are read in key order, a page at a time) and each SQLite column with the PostgreSQL
 * expression that gives its value. The tables are listed parents first, for SQLite's foreign keys.
 */
const TABLES: { name: string; key: string[]; columns: Record<string, string> }[] = [
  { name: 'settings', key: ['owner', 'key'], columns: { owner: 'owner', key: 'key', value: postgres.jsonText('value'), updated_at: postgres.iso('updated_at') } },
  {
    name: 'messages',
    key: ['seq'],
    columns: {
      seq: 'seq',
      id: 'id',
      owner: 'owner',
      session_id: 'session_id',
      role: 'role',
      content: 'content',
      metadata: postgres.jsonText('metadata'),
      created_at: postgres.iso('created_at'),
    },
  },
  {
    name: 'documents',
    key: ['seq'],
    columns: {
      seq: 'seq',
      owner: 'owner',
      id: 'id',
      content: 'content',
      metadata: postgres.jsonText('metadata'),
      source: 'source',
      created_at: postgres.iso('created_at'),
    },
  },
  { name: 'chunks', key: ['id'], columns: { id: 'id', owner: 'owner', document_id: 'document_id', ordinal: 'ordinal', content: 'content' } },
  { name: 'vectors', key: ['chunk_id', 'model'], columns: { chunk_id: 'chunk_id', model: 'model', vector: 'vector' } },
  {
    name: 'deletions',
    key: ['seq'],
    columns: { seq: 'seq', owner: 'owner', document_id: 'document_id', up_to_chunk_id: 'up_to_chunk_id', deleted_at: postgres.iso('deleted_at') },
  },
];

/** True when `dataDir` holds an earlier version's PGlite store. */
export function hasPgliteStore(dataDir: string): boolean {
  return existsSync(path.join(dataDir, PGLITE_DIR, 'PG_VERSION'));
}

/** Copies `<dataDir>/db` into the SQLite file `file` (unless another process did meanwhile), then sets it aside. */
export async function importPgliteStore(dataDir: string, file: string): Promise<void> {
  const dir = path.resolve(dataDir, PGLITE_DIR);
  const fail = (reason: string, cause?: unknown) =>
    new AppError('backend_unavailable', `Cannot import the earlier store in ${dir} into ${file}: ${reason}`, { cause });
  const lock = lockPglite(dir);
  if ('heldBy' in lock) {
    throw fail(`process ${lock.heldBy} has it open (importing it, or an earlier version of the server): start again once it is done`);
  }
  try {
    if (existsSync(file)) return; // another process imported it while we waited for the lock
    log.warn(`found the store of an earlier version (PGlite) in ${dir}: importing it into ${file}, once; this takes a while`);
    const started = performance.now();
    const partial = `${file}.importing`;
    removeDatabase(partial); // a leftover of an import that was interrupted
    let source: Db;
    try {
      source = await openPglite(dir);
      await migrate(source, MIGRATIONS.postgres); // stores from before owners get theirs, as the server would
    } catch (error) {
      throw fail(`PGlite could not open it (${(error as Error)?.message ?? error}); open it with the version that wrote it, or move it away to start with an empty store`, error);
    }
    let counts: Record<string, number>;
    try {
      counts = await copyInto(source, partial);
    } catch (error) {
      throw fail(`copying failed (${(error as Error)?.message ?? error}); the earlier store is as it was`, error);
    } finally {
      await source.close();
    }
    renameSync(partial, file);
    const kept = `${dir}.imported-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(dir, kept);
    const rows = Object.entries(counts).map(([table, n]) => `${n} ${table}`).join(', ');
    log.warn(`imported the earlier store in ${Math.round(performance.now() - started)} ms (${rows}); it is kept in ${kept}: delete it when you no longer need it`);
  } finally {
    lock.release();
  }
}

/** Copies every table into a new SQLite file at `target`, left without a WAL so that it can be renamed. */
async function copyInto(source: Db, target: string): Promise<Record<string, number>> {
  const db = await openSqlite(target);
  try {
    await migrate(db);
    const counts: Record<string, number> = {};
    for (const table of TABLES) counts[table.name] = await copyTable(source, db, table);
    await continueSequences(source, db);
    await db.exec('PRAGMA journal_mode = DELETE');
    return counts;
  } finally {
    await db.close();
  }
}

async function copyTable(source: Db, target: Db, table: (typeof TABLES)[number]): Promise<number> {
  const names = Object.keys(table.columns);
  const select = Object.entries(table.columns).map(([name, expression]) => `${expression} AS ${name}`).join(', ');
  const key = table.key.join(', ');
  const after = table.key.map((_, i) => `$${i + 1}`).join(', ');
  const insert = `INSERT INTO ${table.name} (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`;
  let copied = 0;
  for (let last: unknown[] | undefined; ; ) {
    const rows = await source.query<Record<string, unknown>>(
      `SELECT ${select} FROM ${table.name} ${last ? `WHERE (${key}) > (${after})` : ''} ORDER BY ${key} LIMIT ${PAGE}`,
      last,
    );
    if (!rows.length) return copied;
    await target.transaction(async (tx) => {
      for (const row of rows) await tx.query(insert, names.map((name) => (typeof row[name] === 'bigint' ? Number(row[name]) : row[name])));
    });
    copied += rows.length;
    last = table.key.map((name) => rows[rows.length - 1][name]);
  }
}

/**
 * SQLite's AUTOINCREMENT continues after the highest id it holds; PostgreSQL's sequences may be further on (rows
 * deleted at the end). The ids go on from where PostgreSQL was, so that no id is handed out twice: a logged
 * deletion covers chunk ids up to its `up_to_chunk_id`, and a new chunk under one of those would be dropped with it.
 */
async function continueSequences(source: Db, target: Db): Promise<void> {
  for (const [table, column] of [['messages', 'seq'], ['documents', 'seq'], ['chunks', 'id'], ['deletions', 'seq']]) {
    const [row] = await source.query<{ last: number | string | null }>(
      `SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS last FROM ${await sequenceOf(source, table, column)}`,
    );
    const last = Number(row?.last ?? 0);
    await target.transaction(async (tx) => {
      await tx.query('DELETE FROM sqlite_sequence WHERE name = $1 AND seq < $2', [table, last]);
      await tx.query('INSERT INTO sqlite_sequence (name, seq) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)', [
        table,
        last,
      ]);
    });
  }
}

async function sequenceOf(source: Db, table: string, column: string): Promise<string> {
  const [row] = await source.query<{ name: string }>('SELECT pg_get_serial_sequence($1, $2) AS name', [table, column]);
  return row.name;
}

function removeDatabase(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(file + suffix, { force: true });
}
