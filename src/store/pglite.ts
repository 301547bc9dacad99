/**
 * The embedded backend: PostgreSQL compiled to WASM (`@electric-sql/pglite`), its data directory on disk.
 *
 * Durability. PGlite's defaults start PostgreSQL with `fsync=off` (`-F`), and its Node filesystem (Emscripten's
 * NODEFS) has no fsync at all, while `fdatasync` is a no-op in Emscripten; `relaxedDurability` only matters for the
 * browser filesystems (for NODEFS every write is already a synchronous `fs.writeSync`). With those defaults a
 * committed transaction has reached the OS (it survives the process being killed) but not necessarily the disk.
 * This driver makes commits reach the disk: it starts PostgreSQL without `-F`, with `wal_sync_method=fsync`, and
 * gives NODEFS an fsync that calls `fs.fdatasyncSync`, so a commit resolves after its WAL was fsync'ed, as on a
 * PostgreSQL server. If a PGlite version no longer exposes NODEFS, `durability` reports `'os'`.
 *
 * One process at a time: PGlite is single-user PostgreSQL with no lock on its data directory, and two processes on
 * one directory corrupt it. `<dir>.lock` holds the owner's pid; a second opener gets `backend_unavailable` (several
 * instances share data through a PostgreSQL server instead: DATABASE_URL).
 */
import { PGlite, type PGliteOptions, type Transaction } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.ts';
import type { Db, Queryable } from './sql-store.ts';

export interface PgliteDb extends Db {
  readonly kind: 'embedded';
  /** `'disk'`: a resolved commit was fsync'ed; `'os'`: it was written to the OS (survives a process crash only). */
  readonly durability: 'disk' | 'os';
  readonly dir: string;
  /** How long opening took (WASM start, plus initdb on first use). */
  readonly startupMs: number;
}

type FsyncModule = {
  NODEFS?: { stream_ops?: Record<string, unknown>; tryFSOperation?: (fn: () => unknown) => unknown };
};

/** NODEFS with a real fsync (see the top of the file). */
class SyncedNodeFS extends NodeFS {
  patched = false;

  override async init(pg: PGlite, options: Parameters<NodeFS['init']>[1]) {
    const result = await super.init(pg, options);
    const preRun = (result.emscriptenOpts.preRun ?? []) as ((module: unknown) => void)[];
    result.emscriptenOpts.preRun = [
      ...preRun,
      (module: unknown) => {
        const nodefs = (module as FsyncModule).NODEFS;
        const ops = nodefs?.stream_ops;
        if (!ops || typeof nodefs.tryFSOperation !== 'function') return;
        const attempt = nodefs.tryFSOperation.bind(nodefs);
        // Emscripten's fd_sync calls stream_ops.fsync and returns its result as the errno; tryFSOperation turns a
        // Node error into an ErrnoError, which fd_sync returns as the errno (PostgreSQL then fails loudly).
        ops.fsync = (stream: { nfd?: number }) => {
          if (typeof stream.nfd === 'number') attempt(() => fdatasyncSync(stream.nfd as number));
          return 0;
        };
        this.patched = true;
      },
    ] as typeof result.emscriptenOpts.preRun;
    return result;
  }
}

/** Directories this process has open (a lock file with our own pid may be a leftover of a previous process). */
const openHere = new Set<string>();

export async function openPglite(dir: string): Promise<PgliteDb> {
  const resolved = path.resolve(dir);
  try {
    mkdirSync(path.dirname(resolved), { recursive: true });
  } catch (error) {
    throw unavailable(resolved, `cannot create its parent directory (${(error as Error).message})`, error);
  }
  const lock = acquireLock(resolved);
  const started = performance.now();
  let pg: PGlite | undefined;
  const fs = new SyncedNodeFS(resolved);
  try {
    const options: PGliteOptions = {
      fs,
      startParams: [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync'],
    };
    pg = new PGlite(options);
    await pg.waitReady;
  } catch (error) {
    await pg?.close().catch(() => {});
    lock.release();
    throw unavailable(resolved, (error as Error)?.message ?? String(error), error);
  }
  const db = pg;
  const startupMs = Math.round(performance.now() - started);
  const wrap = (q: PGlite | Transaction): Queryable => ({
    query: async <T>(sql: string, params?: unknown[]) => (await q.query<T>(sql, params as any[])).rows,
    exec: async (sql: string) => {
      await q.exec(sql);
    },
  });
  let closed = false;
  const result: PgliteDb = {
    kind: 'embedded',
    durability: fs.patched ? 'disk' : 'os',
    dir: resolved,
    startupMs,
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    async close() {
      if (closed) return;
      closed = true;
      try {
        await db.close();
      } finally {
        lock.release();
      }
    },
  };
  return result;
}

function unavailable(dir: string, reason: string, cause?: unknown): AppError {
  return new AppError(
    'backend_unavailable',
    `Cannot open the embedded database in ${dir}: ${reason} (DATABASE_URL is not set; set it to use a PostgreSQL server instead)`,
    { cause },
  );
}

function acquireLock(dir: string): { release(): void } {
  const file = `${dir}.lock`;
  if (openHere.has(dir)) throw unavailable(dir, 'it is already open in this process');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      openHere.add(dir);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          openHere.delete(dir);
          rmSync(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw unavailable(dir, `cannot create ${file} (${(error as Error).message})`, error);
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    } catch {
      continue; // removed meanwhile: try again
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
      throw unavailable(dir, `it is in use by process ${owner} (one process at a time; remove ${file} if that process is not ours)`);
    }
    // A leftover of a process that is gone (or of an earlier run with our pid): take it over.
    rmSync(file, { force: true });
  }
  throw unavailable(dir, `cannot take ${file}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
