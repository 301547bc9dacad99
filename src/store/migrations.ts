/**
 * The schema as ordered steps per dialect (`schema-postgres.ts`, `schema-sqlite.ts`), and the runner that applies
 * the steps a database lacks when the store opens: in one transaction, under a lock that instances starting
 * together share (PostgreSQL: an advisory lock; SQLite: the write lock its write transactions take at BEGIN), each
 * recorded in `schema_migrations(version, applied_at)`.
 */
import type { Dialect } from './dialect.ts';
import { POSTGRES_MIGRATIONS } from './schema-postgres.ts';
import { SQLITE_MIGRATIONS } from './schema-sqlite.ts';
import type { Db } from './db.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Record<Dialect['name'], readonly Migration[]> = { postgres: POSTGRES_MIGRATIONS, sqlite: SQLITE_MIGRATIONS };

/** Applies the steps not yet applied, in one transaction, under a lock that instances starting together share. */
export async function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS[db.dialect.name]): Promise<void> {
  const versions = migrations.map((m) => m.version);
  if (versions.some((v, i) => !Number.isInteger(v) || v <= 0 || (i > 0 && v <= versions[i - 1]))) {
    throw new Error('Migration versions must be positive integers in increasing order');
  }
  const { migrationLock, migrationsTable } = db.dialect;
  await db.transaction(async (tx) => {
    // Instances starting together wait here for each other; the first one applies the steps.
    if (migrationLock) await tx.query(migrationLock);
    await tx.exec(migrationsTable);
    const applied = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => Number(row.version)));
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
    }
  });
}
