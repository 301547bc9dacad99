/**
 * Opens the store: a PostgreSQL server when `databaseUrl` (DATABASE_URL) is set, else the embedded SQLite file
 * `<dataDir>/store.sqlite` (importing an earlier version's PGlite store first, once, when one is there). Either
 * way the schema migrations run before it resolves.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { hasPgliteStore, importPgliteStore } from './pglite-import.ts';
import { openPostgres } from './postgres.ts';
import { SqlStore } from './sql-store.ts';
import { openSqlite } from './sqlite.ts';
import type { Store } from './types.ts';

export type * from './types.ts';
export { SqlStore } from './sql-store.ts';

/** The embedded store's file, in the data directory (with SQLite's `-wal` and `-shm` beside it while open). */
export const STORE_FILE = 'store.sqlite';

export interface StoreOptions {
  /** `postgres://user:password@host:port/database`; unset or empty: the embedded store. */
  databaseUrl?: string;
  /** The server's data directory; the embedded store is `<dataDir>/store.sqlite`. */
  dataDir: string;
  /** Connection pool size for PostgreSQL (default 10). */
  poolSize?: number;
  /** How long the embedded store waits for another process's write lock before it counts as locked (10 s). */
  busyTimeoutMs?: number;
}

/** A failure is `backend_unavailable`, its message naming the cause and the fix (a password never shown). */
export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) return SqlStore.open(await openPostgres(options.databaseUrl, { max: options.poolSize }));
  const file = path.resolve(options.dataDir, STORE_FILE);
  if (!existsSync(file) && hasPgliteStore(options.dataDir)) await importPgliteStore(options.dataDir, file);
  return SqlStore.open(await openSqlite(file, { busyTimeoutMs: options.busyTimeoutMs }));
}
