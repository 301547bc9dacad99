/** What the store needs from a database driver: SQLite (`sqlite.ts`) or a PostgreSQL server (`postgres.ts`). */
import type { Dialect } from './dialect.ts';

/** A connection, or a transaction on one. */
export interface Queryable {
  /**
   * One statement with `$n` parameters (strings, numbers, null, bytes); the result rows. Byte columns come back as
   * a `Uint8Array` (a Node `Buffer` on both drivers).
   */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Statements without parameters (several allowed, `;`-separated). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly dialect: Dialect;
  /**
   * Runs `fn` in one write transaction: committed when it resolves, rolled back when it throws. `fn` works through
   * `tx` only: on SQLite, nothing else of this process runs on the connection meanwhile (a call on the `Db` itself
   * waits until the transaction ends).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
