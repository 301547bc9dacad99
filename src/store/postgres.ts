/**
 * The server backend: a PostgreSQL server through node-postgres, with a small pool. Several instances may share one
 * database (migrations and index-feeding writes take advisory locks; see `sql-store.ts`). A commit resolves after
 * the server flushed its WAL (PostgreSQL's default `synchronous_commit=on`).
 */
import pg from 'pg';
import { AppError } from '../errors.ts';
import type { Db, Queryable } from './db.ts';
import { postgres } from './dialect.ts';

export interface PostgresOptions {
  /** Pool size (default 10). */
  max?: number;
  /** How long to wait for a connection (default 10 s). */
  connectionTimeoutMs?: number;
}

export interface PostgresDb extends Db {
  readonly pool: pg.Pool;
}

/** The URL with its password replaced by `***`, for messages and logs (or a placeholder when it does not parse). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(a value that is not a URL)';
  }
}

/** Connects (one round-trip to check the server answers); a failure is `backend_unavailable` naming DATABASE_URL. */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresDb> {
  const shown = redactUrl(url);
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw new AppError('backend_unavailable', `DATABASE_URL must be a postgres:// or postgresql:// URL (it is ${shown}); unset it to use the embedded store`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: 'tabagent',
  });
  // An idle connection that breaks (server restart) is dropped by the pool; without a listener the 'error' event
  // would crash the process. The next query opens a fresh connection (or fails as backend_unavailable).
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => {});
    const reason = error instanceof Error && error.message ? error.message : String((error as { code?: unknown })?.code ?? error);
    throw new AppError(
      'backend_unavailable',
      `Cannot connect to the PostgreSQL server at DATABASE_URL=${shown}: ${reason.replaceAll(url, shown)} ` +
        '(start the server or correct DATABASE_URL; unset it to use the embedded store)',
      { cause: error },
    );
  }

  const wrap = (client: pg.Pool | pg.PoolClient): Queryable => ({
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
    exec: async (sql: string) => {
      await client.query(sql);
    },
  });
  let closed: Promise<void> | undefined;
  return {
    dialect: postgres,
    pool,
    ...wrap(pool),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
      } catch (error) {
        client.release(error as Error); // the pool discards a connection released with an error
        throw error;
      }
      let broken: Error | undefined;
      try {
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        client.release(broken);
      }
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}
