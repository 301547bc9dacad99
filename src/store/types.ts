/**
 * The store: everything the server keeps across restarts (settings, chat history, documents with their chunks and
 * embedding vectors). One interface, two backends with the same behaviour: an embedded SQLite file in the data
 * directory (the default; several processes may open it at once) and a PostgreSQL server (`DATABASE_URL`), which
 * several instances can share. Every write is committed when its promise resolves.
 *
 * Everything stored belongs to an `owner` (an API key's id, `anonymous` without keys; `*` for the settings every
 * caller shares), and every read and write names one: no call reaches another owner's rows.
 */
export type Metadata = Record<string, unknown>;

export interface StoredMessage {
  id: string;
  session_id: string;
  role: string;
  content: string;
  metadata?: Metadata;
  /** ISO 8601. */
  created_at: string;
}

export type DocumentSource = 'document' | 'message';

export interface StoredDocument {
  id: string;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
  created_at: string;
  chunks: number;
}

/** A document to write, already chunked, with the vectors made so far (per embedding model). */
export interface DocumentWrite {
  id: string;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
  chunks: { content: string; vectors: { model: string; vector: Float32Array }[] }[];
}

/** A chunk as the search index loads it: ids grow with every insert, so `chunksSince` can follow new ones. */
export interface StoredChunk {
  id: number;
  owner: string;
  document_id: string;
  ordinal: number;
  content: string;
  /** The document's metadata (filters apply to it) and source. */
  metadata: Metadata;
  source: DocumentSource;
  /** This chunk's vector for the requested model, when one was stored. */
  vector?: Float32Array;
}

/** A document's chunks were removed: every chunk of `document_id` with an id up to `up_to_chunk_id` is gone. */
export interface Deletion {
  seq: number;
  owner: string;
  document_id: string;
  up_to_chunk_id: number;
}

export interface Store {
  readonly kind: 'embedded' | 'postgres';

  getSetting<T>(owner: string, key: string): Promise<T | undefined>;
  setSetting(owner: string, key: string, value: unknown): Promise<void>;

  saveMessage(owner: string, message: { session_id: string; role: string; content: string; metadata?: Metadata }): Promise<StoredMessage>;
  /** Newest last; at most `limit` (the newest ones), of one session or of all the owner's. */
  chatHistory(owner: string, options: { session_id?: string; limit: number }): Promise<StoredMessage[]>;

  /** Inserts documents; one with an id the owner already has replaces it (the old chunks are deleted and logged). */
  addDocuments(owner: string, documents: DocumentWrite[]): Promise<void>;
  /** Deletes the owner's documents by id; returns how many existed. */
  deleteDocuments(owner: string, ids: string[]): Promise<number>;
  listDocuments(
    owner: string,
    options: { limit: number; offset: number; source?: DocumentSource },
  ): Promise<{ documents: StoredDocument[]; total: number }>;

  /**
   * For the search index, which keeps every owner's chunks apart (`owner` on each): chunks with an id above
   * `afterId`, in id order, at most `limit`, each with its vector for `model` if stored.
   */
  chunksSince(afterId: number, model: string, limit: number): Promise<StoredChunk[]>;
  /** Deletions logged after `afterSeq`, in order. */
  deletionsSince(afterSeq: number): Promise<Deletion[]>;
  /** Stores vectors made later (a chunk embedded with a model it had no vector for). */
  putVectors(model: string, vectors: { chunk_id: number; vector: Float32Array }[]): Promise<void>;

  close(): Promise<void>;
}
