/**
 * Opens the store: a PostgreSQL server when `databaseUrl` (DATABASE_URL) is set, else the embedded PostgreSQL
 * (PGlite) in `<dataDir>/db`. Either way the schema migrations run before it resolves.
 */
import path from 'node:path';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import { SqlStore } from './sql-store.ts';
import type { Store } from './types.ts';

export type * from './types.ts';
export { SqlStore } from './sql-store.ts';

export interface StoreOptions {
  /** `postgres://user:password@host:port/database`; unset or empty: the embedded database. */
  databaseUrl?: string;
  /** The server's data directory; the embedded database lives in `<dataDir>/db`. */
  dataDir: string;
  /** Connection pool size for PostgreSQL (default 10). */
  poolSize?: number;
}

/** A connection failure is `backend_unavailable`, its message naming DATABASE_URL (the password never shown). */
export async function openStore(options: StoreOptions): Promise<Store> {
  const db = options.databaseUrl
    ? await openPostgres(options.databaseUrl, { max: options.poolSize })
    : await openPglite(path.join(options.dataDir, 'db'));
  return SqlStore.open(db);
}
