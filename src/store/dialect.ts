/**
 * What differs between PostgreSQL and SQLite, in one place. The store's statements are written once: `$n`
 * parameters (the SQLite driver binds them as `?n`), `CAST(x AS type)`, `CROSS JOIN ... WHERE` (SQLite joins in
 * the order written, so a JSON parameter drives the loop and the index is searched per row), `INSERT ... SELECT ...
 * WHERE true ON CONFLICT` (SQLite needs the WHERE to parse an upsert after a SELECT). Everything else comes from
 * here: JSON in and out, timestamps, bytes, and the locks that PostgreSQL needs and SQLite's single writer does not.
 *
 * A typed query builder (Kysely) was weighed against this: the store is about fifteen statements, and what differs
 * is exactly what a builder leaves to raw SQL (bulk rows from JSON, locks, DDL), so it would add two dependencies
 * and a second way to write SQL without taking any of this away.
 */

/** How a column of a JSON parameter's rows is read: a number, text, or a JSON value kept as JSON. */
export type ColumnType = 'int' | 'text' | 'json';

export interface Dialect {
  readonly name: 'postgres' | 'sqlite';
  /** A JSON array of objects (a text parameter, e.g. `$1`) as a table `alias` with `columns`. */
  rows(param: string, alias: string, columns: Record<string, ColumnType>): string;
  /** A JSON array of strings (a text parameter) as a one-column subquery: `id IN (${strings('$1')})`. */
  strings(param: string): string;
  /** JSON text (a parameter) as a value for a JSON column. */
  json(param: string): string;
  /** A JSON column as JSON text (both drivers then return the same thing: a string to parse). */
  jsonText(column: string): string;
  /** A timestamp column as ISO 8601 in UTC with milliseconds: `2026-01-02T03:04:05.678Z`. */
  iso(column: string): string;
  /** Hex text as bytes (for a blob / bytea column). */
  bytes(hex: string): string;
  /** The current time, as a timestamp column stores it. */
  readonly now: string;
  /**
   * A statement, first in a transaction, that makes writers feeding the search index wait for each other, so ids
   * are committed in the order they are taken (see `sql-store.ts`); none where write transactions already take
   * the database's one write lock when they begin.
   */
  readonly writeLock?: string;
  /** The same for migrations, so instances starting together apply them once. */
  readonly migrationLock?: string;
  /** Creates the table of applied migrations when it is missing. */
  readonly migrationsTable: string;
}

/** `pg_advisory_xact_lock` keys: ASCII "tabwrit" and "tabmigr" as integers. */
const WRITE_LOCK = '32758172837112180';
const MIGRATION_LOCK = '32758172668749682';

const PG_TYPES: Record<ColumnType, string> = { int: 'int', text: 'text', json: 'jsonb' };

export const postgres: Dialect = {
  name: 'postgres',
  rows: (param, alias, columns) =>
    `json_to_recordset(CAST(${param} AS json)) AS ${alias}(${Object.entries(columns)
      .map(([name, type]) => `${name} ${PG_TYPES[type]}`)
      .join(', ')})`,
  strings: (param) => `SELECT json_array_elements_text(CAST(${param} AS json))`,
  json: (param) => `CAST(CAST(${param} AS text) AS jsonb)`,
  jsonText: (column) => `CAST(${column} AS text)`,
  iso: (column) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
  bytes: (hex) => `decode(${hex}, 'hex')`,
  now: 'now()',
  writeLock: `SELECT pg_advisory_xact_lock(${WRITE_LOCK})`,
  migrationLock: `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`,
  migrationsTable: 'CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
};

/** SQLite keeps timestamps as ISO 8601 text, written by the database in exactly the format `iso` gives. */
const SQLITE_NOW = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`;

export const sqlite: Dialect = {
  name: 'sqlite',
  rows: (param, alias, columns) =>
    `(SELECT ${Object.entries(columns)
      .map(([name, type]) => `value ${type === 'json' ? '->' : '->>'} '${name}' AS ${name}`)
      .join(', ')} FROM json_each(${param})) AS ${alias}`,
  strings: (param) => `SELECT value FROM json_each(${param})`,
  json: (param) => `json(${param})`,
  jsonText: (column) => column,
  iso: (column) => column,
  bytes: (hex) => `unhex(${hex})`,
  now: SQLITE_NOW,
  migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at text NOT NULL DEFAULT (${SQLITE_NOW}))`,
};
