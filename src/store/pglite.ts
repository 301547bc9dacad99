/**
 * Earlier versions' embedded store: PostgreSQL compiled to WASM (`@electric-sql/pglite`) in `<dataDir>/db`. Only
 * `pglite-import.ts` opens one now, once, to copy its rows into SQLite; PGlite is loaded then and never otherwise
 * (it takes seconds and hundreds of MB to start).
 *
 * PGlite is single-user PostgreSQL with no lock on its directory, and two processes on one directory corrupt it, so
 * earlier versions kept `<dir>.lock` with the owner's pid. The importer takes the same lock, so it waits for no one
 * and an earlier version's server still running on the directory is seen.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { Db, Queryable } from './db.ts';
import { postgres } from './dialect.ts';

/** Opens a PGlite directory (the caller holds its lock). */
export async function openPglite(dir: string): Promise<Db> {
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = new PGlite(dir);
  try {
    await pg.waitReady;
  } catch (error) {
    await pg.close().catch(() => {});
    throw error;
  }
  type Client = Pick<typeof pg, 'query' | 'exec'>;
  const wrap = (client: Client): Queryable => ({
    query: async <T>(sql: string, params?: unknown[]) => (await client.query<T>(sql, params as never[])).rows,
    exec: async (sql: string) => void (await client.exec(sql)),
  });
  return {
    dialect: postgres,
    ...wrap(pg),
    transaction: (fn) => pg.transaction((tx) => fn(wrap(tx))),
    close: () => pg.close(),
  };
}

/**
 * Takes `<dir>.lock` (a leftover of a process that is gone is taken over); returns how to release it, or the pid
 * of the live process that holds it.
 */
export function lockPglite(dir: string): { release(): void } | { heldBy: number } {
  const file = `${dir}.lock`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return { release: () => rmSync(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    } catch {
      continue; // removed meanwhile: try again
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) return { heldBy: owner };
    rmSync(file, { force: true });
  }
  throw new Error(`cannot take ${file}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
