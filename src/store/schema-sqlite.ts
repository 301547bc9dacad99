/**
 * The SQLite schema's steps (the embedded store). Step 1 is the PostgreSQL schema as its steps 1 and 2 left it,
 * in SQLite's terms; a change to the schema is a new step at the end, here and in `schema-postgres.ts`.
 *
 * - Ids that a search index follows (`chunks.id`, `deletions.seq`) and the orders of messages and documents are
 *   AUTOINCREMENT keys: SQLite then never hands out an id again, not even the highest one after it was deleted,
 *   so "id > last seen" can never miss a row (a plain rowid key reuses a deleted maximum).
 * - Tables are STRICT: a value of the wrong type is an error, as in PostgreSQL, instead of being stored as is.
 * - JSON is kept as text (`json()` checks it on the way in); timestamps as ISO 8601 text in UTC.
 */
const NOW = `(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`;

/** `Migration`s (`migrations.ts`, which checks their shape). */
export const SQLITE_MIGRATIONS = [
  {
    version: 1,
    name: 'settings, messages, documents, chunks, vectors, deletions, each row with its owner',
    sql: `
      CREATE TABLE settings (
        owner text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        updated_at text NOT NULL DEFAULT ${NOW},
        PRIMARY KEY (owner, key)
      ) STRICT;

      CREATE TABLE messages (
        seq integer PRIMARY KEY AUTOINCREMENT,
        id text NOT NULL UNIQUE,
        owner text NOT NULL,
        session_id text NOT NULL,
        role text NOT NULL,
        content text NOT NULL,
        metadata text,
        created_at text NOT NULL DEFAULT ${NOW}
      ) STRICT;
      CREATE INDEX messages_owner_session_seq ON messages (owner, session_id, seq);
      CREATE INDEX messages_owner_seq ON messages (owner, seq);

      CREATE TABLE documents (
        seq integer PRIMARY KEY AUTOINCREMENT,
        owner text NOT NULL,
        id text NOT NULL,
        content text NOT NULL,
        metadata text NOT NULL DEFAULT '{}',
        source text NOT NULL CHECK (source IN ('document', 'message')),
        created_at text NOT NULL DEFAULT ${NOW},
        UNIQUE (owner, id)
      ) STRICT;
      CREATE INDEX documents_owner_source_seq ON documents (owner, source, seq);
      CREATE INDEX documents_owner_seq ON documents (owner, seq);

      CREATE TABLE chunks (
        id integer PRIMARY KEY AUTOINCREMENT,
        owner text NOT NULL,
        document_id text NOT NULL,
        ordinal integer NOT NULL,
        content text NOT NULL,
        FOREIGN KEY (owner, document_id) REFERENCES documents (owner, id) ON DELETE CASCADE
      ) STRICT;
      CREATE INDEX chunks_owner_document_id ON chunks (owner, document_id, id);

      CREATE TABLE vectors (
        chunk_id integer NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
        model text NOT NULL,
        vector blob NOT NULL,
        PRIMARY KEY (chunk_id, model)
      ) STRICT;

      CREATE TABLE deletions (
        seq integer PRIMARY KEY AUTOINCREMENT,
        owner text NOT NULL,
        document_id text NOT NULL,
        up_to_chunk_id integer NOT NULL,
        deleted_at text NOT NULL DEFAULT ${NOW}
      ) STRICT;
    `,
  },
] as const;
