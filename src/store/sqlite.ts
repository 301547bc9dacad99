/**
 * The embedded backend: SQLite in one file (`<dataDir>/store.sqlite`), through libSQL's Node binding (`libsql`,
 * SQLite 3.45 with its native binary in an npm package per platform; it loads under Node and Deno).
 *
 * Several processes at once: a server and the native hosts Chrome starts, or two hosts. In WAL mode readers never
 * wait and one writer at a time holds the write lock; write transactions take it when they begin (`BEGIN
 * IMMEDIATE`), so one never fails halfway for want of it. The binding is synchronous, so SQLite's own busy handler
 * would stop the event loop while it waits: it waits only `BUSY_SLICE_MS`, then the operation is tried again after
 * an asynchronous pause, up to `busyTimeoutMs`; past that the store is locked (`backend_unavailable`).
 *
 * Durability: `synchronous=FULL`, so a commit resolves after its WAL frames were fsync'ed, as on a PostgreSQL
 * server: an acknowledged write survives the process being killed and the machine losing power. (NORMAL would
 * survive a killed process too, the WAL being in the OS's cache, but not a power cut; FULL costs about 0.15 ms a
 * commit here.) A crash leaves no lock behind: SQLite's locks are the OS's file locks, released with the process,
 * and the next opener replays the WAL.
 *
 * One connection per process, and this process's operations take turns on it: a transaction spans awaits, and a
 * statement run in between would see its uncommitted rows.
 */
import Database from 'libsql';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.ts';
import type { Db, Queryable } from './db.ts';
import { sqlite } from './dialect.ts';

export interface SqliteOptions {
  /** How long an operation may wait for another process's write lock before the store counts as locked (10 s). */
  busyTimeoutMs?: number;
}

export interface SqliteDb extends Db {
  readonly file: string;
}

/** The longest SQLite's busy handler blocks the event loop in one try. */
const BUSY_SLICE_MS = 20;
const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** A prepared statement and the names of its result columns (none: it returns no rows). */
interface Prepared {
  statement: ReturnType<Database.Database['prepare']>;
  columns: string[];
}

/** Opens (or creates) the store file and sets it up; a failure is `backend_unavailable` naming the file and the fix. */
export async function openSqlite(file: string, options: SqliteOptions = {}): Promise<SqliteDb> {
  const resolved = path.resolve(file);
  let db: Database.Database;
  try {
    mkdirSync(path.dirname(resolved), { recursive: true });
    db = new Database(resolved);
  } catch (error) {
    throw cannotOpen(resolved, error);
  }
  const connection = new SqliteConnection(db, resolved, options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_SLICE_MS}`);
    // The first read of the file: one that is not a database fails here. WAL mode is kept in the file.
    const [mode] = await connection.query<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
    if (mode?.journal_mode !== 'wal') {
      throw new AppError('backend_unavailable', `Cannot open the store ${resolved}: its file system does not allow SQLite's WAL mode (a network drive?); set TABAGENT_DATA_DIR to a local directory`);
    }
    db.exec('PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON');
  } catch (error) {
    db.close();
    throw cannotOpen(resolved, error);
  }
  return connection;
}

class SqliteConnection implements SqliteDb {
  readonly dialect = sqlite;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Prepared>();
  #turn: Promise<unknown> = Promise.resolve();
  #closed?: Promise<void>;

  constructor(
    db: Database.Database,
    readonly file: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.#db = db;
  }

  /** What a transaction runs on: the connection, already in its turn. */
  readonly #tx: Queryable = {
    query: async <T>(sql: string, params?: unknown[]) => this.#run<T>(sql, params),
    exec: async (sql: string) => void this.#db.exec(sql),
  };

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.#inTurn(() => this.#unlessBusy(() => this.#run<T>(sql, params)));
  }

  exec(sql: string): Promise<void> {
    return this.#inTurn(() => this.#unlessBusy(() => void this.#db.exec(sql)));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#inTurn(async () => {
      await this.#unlessBusy(() => this.#db.exec('BEGIN IMMEDIATE'));
      try {
        const result = await fn(this.#tx);
        await this.#unlessBusy(() => this.#db.exec('COMMIT'));
        return result;
      } catch (error) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    });
  }

  /**
   * Moves what the WAL holds into the file first (when no other process is reading), so that a stopped store is one
   * complete file. The binding frees the connection itself once its prepared statements are collected.
   */
  close(): Promise<void> {
    return (this.#closed ??= this.#turn.then(() => {
      try {
        this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      } catch {
        // busy: another process goes on using the store, and its WAL with it
      }
      this.#statements.clear();
      this.#db.close();
    }));
  }

  /** Runs `fn` once every operation queued before it has finished. */
  #inTurn<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new AppError('shutting_down', 'The store is closed'));
    const run = this.#turn.then(fn);
    this.#turn = run.catch(() => {});
    return run;
  }

  /** Tries `fn` again while another process holds the write lock, pausing without blocking, up to the timeout. */
  async #unlessBusy<T>(fn: () => T): Promise<T> {
    const deadline = performance.now() + this.busyTimeoutMs;
    for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw error;
        if (performance.now() >= deadline) throw locked(this.file, this.busyTimeoutMs, error);
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  /** One statement; rows as plain objects (the binding's own row objects carry an extra `_metadata` key). */
  #run<T>(sql: string, params: unknown[] = []): T[] {
    const { statement, columns } = this.#prepare(sql);
    if (columns.length === 0) {
      statement.run(params);
      return [];
    }
    return (statement.raw().all(params) as unknown[][]).map((values) => {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < columns.length; i++) row[columns[i]] = values[i];
      return row as T;
    });
  }

  /** The store's SQL is a fixed set of strings, so prepared statements are kept by their text. */
  #prepare(sql: string): Prepared {
    let prepared = this.#statements.get(sql);
    if (!prepared) {
      // `$n` is PostgreSQL's positional parameter; SQLite's is `?n` (`$n` there would be a name, bound in order of
      // first appearance). The store's SQL has no `$` in its literals.
      const statement = this.#db.prepare(sql.replace(/\$(\d+)/g, '?$1'));
      prepared = { statement, columns: statement.columns().map((column) => column.name) };
      this.#statements.set(sql, prepared);
    }
    return prepared;
  }
}

function sqliteCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function isBusy(error: unknown): boolean {
  return sqliteCode(error).startsWith('SQLITE_BUSY');
}

function locked(file: string, waitedMs: number, cause: unknown): AppError {
  return new AppError(
    'backend_unavailable',
    `The store ${file} is locked: another process has held its write lock for ${waitedMs / 1000} s ` +
      '(a hung or stopped server or native host, or a sqlite3 shell in a transaction); end that process, or wait for it',
    { cause },
  );
}

/** The reason an open failed, and what to do about it, in one line. */
function cannotOpen(file: string, error: unknown): AppError {
  if (error instanceof AppError) return error;
  const code = sqliteCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  let fix: string;
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    fix = 'it is not a SQLite database, or it is damaged: move it away to start with an empty store, or put back a backup';
  } else if (/^SQLITE_(CANTOPEN|PERM|READONLY|AUTH)/.test(code) || /^E(ACCES|PERM|NOTDIR|EXIST|ROFS|ISDIR)$/.test(code)) {
    fix = `the user running the server needs to read and write ${path.dirname(file)}; set TABAGENT_DATA_DIR to a directory it can`;
  } else {
    fix = 'check the disk (free space, errors) and that nothing else changed the file';
  }
  return new AppError('backend_unavailable', `Cannot open the store ${file} (${reason}): ${fix}`, { cause: error });
}
