/**
 * The PostgreSQL schema's steps (a server at DATABASE_URL). Plain PostgreSQL, no extensions: servers as old as 13.
 * A step is never edited once released: a change is a new step at the end, here and in `schema-sqlite.ts`.
 */
/** `Migration`s (`migrations.ts`, which checks their shape). */
export const POSTGRES_MIGRATIONS = [
  {
    version: 1,
    name: 'settings, messages, documents, chunks, vectors, deletions',
    sql: `
      CREATE TABLE settings (
        key text PRIMARY KEY,
        value jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      -- Chat history. seq orders the messages (created_at ties within a transaction); id is the public id.
      CREATE TABLE messages (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        session_id text NOT NULL,
        role text NOT NULL,
        content text NOT NULL,
        metadata jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX messages_session_seq ON messages (session_id, seq);

      -- Documents for RAG. seq orders them for listing (newest first); a replaced document gets a new seq.
      CREATE TABLE documents (
        id text PRIMARY KEY,
        seq bigserial NOT NULL UNIQUE,
        content text NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        source text NOT NULL CHECK (source IN ('document', 'message')),
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX documents_source_seq ON documents (source, seq);

      -- Chunk ids only grow, so a search index follows new chunks with "id > last seen". The (document_id, id) index
      -- serves the cascade from documents and a document's highest chunk id (logged in deletions).
      CREATE TABLE chunks (
        id bigserial PRIMARY KEY,
        document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        ordinal int NOT NULL,
        content text NOT NULL
      );
      CREATE INDEX chunks_document_id ON chunks (document_id, id);

      -- One vector per chunk and embedding model: a Float32Array's bytes, little-endian.
      CREATE TABLE vectors (
        chunk_id bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
        model text NOT NULL,
        vector bytea NOT NULL,
        PRIMARY KEY (chunk_id, model)
      );

      -- Removals, so a search index in any instance can drop the chunks it holds: every chunk of document_id with an
      -- id up to up_to_chunk_id is gone.
      CREATE TABLE deletions (
        seq bigserial PRIMARY KEY,
        document_id text NOT NULL,
        up_to_chunk_id bigint NOT NULL,
        deleted_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 2,
    name: 'stored data belongs to an owner',
    // The owner is an API key's id, or 'anonymous' without keys: every row written so far is the anonymous one's.
    // Settings every caller shares (the server params) belong to '*'. Documents are keyed per owner, so two keys
    // may use the same document id; chunks and deletions carry the owner to reach their document.
    sql: `
      ALTER TABLE settings ADD COLUMN owner text NOT NULL DEFAULT 'anonymous';
      UPDATE settings SET owner = '*' WHERE key = 'server_params';
      ALTER TABLE settings DROP CONSTRAINT settings_pkey;
      ALTER TABLE settings ADD PRIMARY KEY (owner, key);

      ALTER TABLE messages ADD COLUMN owner text NOT NULL DEFAULT 'anonymous';
      DROP INDEX messages_session_seq;
      CREATE INDEX messages_owner_session_seq ON messages (owner, session_id, seq);
      CREATE INDEX messages_owner_seq ON messages (owner, seq);

      ALTER TABLE chunks DROP CONSTRAINT chunks_document_id_fkey;
      ALTER TABLE documents ADD COLUMN owner text NOT NULL DEFAULT 'anonymous';
      ALTER TABLE documents DROP CONSTRAINT documents_pkey;
      ALTER TABLE documents ADD PRIMARY KEY (owner, id);
      DROP INDEX documents_source_seq;
      CREATE INDEX documents_owner_source_seq ON documents (owner, source, seq);
      CREATE INDEX documents_owner_seq ON documents (owner, seq);

      ALTER TABLE chunks ADD COLUMN owner text NOT NULL DEFAULT 'anonymous';
      DROP INDEX chunks_document_id;
      CREATE INDEX chunks_owner_document_id ON chunks (owner, document_id, id);
      ALTER TABLE chunks ADD FOREIGN KEY (owner, document_id) REFERENCES documents (owner, id) ON DELETE CASCADE;

      ALTER TABLE deletions ADD COLUMN owner text NOT NULL DEFAULT 'anonymous';

      -- From now on every write names its owner.
      ALTER TABLE settings ALTER COLUMN owner DROP DEFAULT;
      ALTER TABLE messages ALTER COLUMN owner DROP DEFAULT;
      ALTER TABLE documents ALTER COLUMN owner DROP DEFAULT;
      ALTER TABLE chunks ALTER COLUMN owner DROP DEFAULT;
      ALTER TABLE deletions ALTER COLUMN owner DROP DEFAULT;
    `,
  },
  {
    version: 3,
    name: 'the cluster directory: nodes and the sessions they hold',
    // Several instances on one database (src/cluster/): each node's heartbeat and load, and each session's node,
    // address and owner, so that any node can route a session's signaling to its owner and count an address's
    // sessions over the cluster. Rows go with their session, and with a node that stops heartbeating.
    sql: `
      CREATE TABLE cluster_nodes (
        id text PRIMARY KEY,
        url text NOT NULL,
        sessions int NOT NULL DEFAULT 0,
        draining boolean NOT NULL DEFAULT false,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE cluster_sessions (
        id text PRIMARY KEY,
        node_id text NOT NULL,
        ip text NOT NULL,
        owner text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX cluster_sessions_ip ON cluster_sessions (ip);
      CREATE INDEX cluster_sessions_node ON cluster_sessions (node_id);
      -- New sessions per address, over the cluster: rate-limiter-flexible's table, in its own shape.
      CREATE TABLE cluster_rate_limits (
        key varchar(255) PRIMARY KEY,
        points integer NOT NULL DEFAULT 0,
        expire bigint
      );
    `,
  },
] as const;
