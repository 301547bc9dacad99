import { AppError } from '../../errors.ts';
import { Bm25Index } from '../../knowledge/bm25.ts';
import { reciprocalRankFusion } from '../../knowledge/fusion.ts';
import { tokenize } from '../../knowledge/text.ts';
import { VectorIndex, type Scored } from '../../knowledge/vector-index.ts';
import type { DocumentSource, Metadata, Store, StoredChunk } from '../../store/types.ts';
import type { Embedder } from './embedders.ts';

export interface SearchHit {
  id: string;
  chunk: number;
  score: number;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
  scores: { vector?: number; lexical?: number };
}

export type Filters = Record<string, string | number | boolean>;

interface Entry {
  documentId: string;
  ordinal: number;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
}

/** Chunks read from the store per query while catching up. */
const PAGE = 2_000;
/** Each ranking contributes this many candidates (at least) to the fusion. */
const CANDIDATES = 50;

/**
 * The in-memory search index over the store's chunks for one embedding model: BM25 and exact cosine search.
 * The store stays the truth: before each search the index reads what was added or deleted since it last looked
 * (in this instance or any other sharing the database), embedding chunks that lack this model's vector.
 */
export class SearchIndex {
  private readonly entries = new Map<number, Entry>();
  private readonly chunksOf = new Map<string, number[]>();
  private readonly keyCounts = new Map<string, number>();
  private readonly lexical = new Bm25Index();
  private vectors: VectorIndex | undefined;
  private lastChunkId = 0;
  private lastDeletion = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    readonly embedder: Embedder,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Catches up with the store; concurrent callers share the work in order. */
  sync(signal: AbortSignal): Promise<void> {
    const run = this.tail.then(() => this.pull(signal));
    this.tail = run.catch(() => {});
    return run;
  }

  /** `hybrid`: BM25 and vectors fused by rank (RRF); `vector`: cosine only. Filters are metadata equalities. */
  async search(query: string, options: { k: number; filters?: Filters; mode: 'hybrid' | 'vector'; signal: AbortSignal }): Promise<SearchHit[]> {
    await this.sync(options.signal);
    const accept = this.acceptor(options.filters);
    const pool = Math.max(options.k * 4, CANDIDATES);
    const [queryVector] = await this.embedder.embed([query], options.signal);
    const byVector = this.vectors?.search(queryVector, options.mode === 'vector' ? options.k : pool, accept) ?? [];
    if (options.mode === 'vector') return byVector.map((hit) => this.hit(hit, { vector: hit.score }));

    const byWords = this.lexical.search(tokenize(query), pool, accept);
    const vectorScore = new Map(byVector.map((h) => [h.id, h.score]));
    const lexicalScore = new Map(byWords.map((h) => [h.id, h.score]));
    return reciprocalRankFusion([byVector, byWords])
      .slice(0, options.k)
      .map((hit) => this.hit(hit, { vector: vectorScore.get(hit.id), lexical: lexicalScore.get(hit.id) }));
  }

  private async pull(signal: AbortSignal): Promise<void> {
    for (;;) {
      const chunks = await this.store.chunksSince(this.lastChunkId, this.embedder.model, PAGE);
      if (chunks.length === 0) break;
      await this.embedMissing(chunks, signal);
      for (const chunk of chunks) this.add(chunk);
      this.lastChunkId = chunks[chunks.length - 1].id;
      if (chunks.length < PAGE) break;
    }
    for (const deletion of await this.store.deletionsSince(this.lastDeletion)) {
      const ids = this.chunksOf.get(deletion.document_id) ?? [];
      const kept = ids.filter((id) => id > deletion.up_to_chunk_id);
      for (const id of ids) if (id <= deletion.up_to_chunk_id) this.remove(id);
      if (kept.length) this.chunksOf.set(deletion.document_id, kept);
      else this.chunksOf.delete(deletion.document_id);
      this.lastDeletion = deletion.seq;
    }
  }

  /** Chunks stored before this model was in use get their vectors now, and keep them. */
  private async embedMissing(chunks: StoredChunk[], signal: AbortSignal): Promise<void> {
    const missing = chunks.filter((chunk) => !chunk.vector);
    if (missing.length === 0) return;
    const vectors = await this.embedder.embed(missing.map((chunk) => chunk.content), signal);
    missing.forEach((chunk, i) => (chunk.vector = vectors[i]));
    await this.store.putVectors(this.embedder.model, missing.map((chunk, i) => ({ chunk_id: chunk.id, vector: vectors[i] })));
  }

  private add(chunk: StoredChunk): void {
    const vector = chunk.vector!;
    this.vectors ??= new VectorIndex(vector.length);
    if (vector.length !== this.vectors.dims) {
      throw new AppError('upstream_error', `"${this.embedder.model}" returned ${vector.length} dimensions, not ${this.vectors.dims}`);
    }
    const { id, document_id: documentId, ordinal, content, metadata, source } = chunk;
    this.entries.set(id, { documentId, ordinal, content, metadata, source });
    this.chunksOf.set(documentId, [...(this.chunksOf.get(documentId) ?? []), id]);
    for (const key of Object.keys(metadata)) this.keyCounts.set(key, (this.keyCounts.get(key) ?? 0) + 1);
    this.vectors.add(id, vector);
    this.lexical.add(id, tokenize(content));
  }

  private remove(id: number): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    for (const key of Object.keys(entry.metadata)) {
      const left = (this.keyCounts.get(key) ?? 1) - 1;
      if (left > 0) this.keyCounts.set(key, left);
      else this.keyCounts.delete(key);
    }
    this.vectors?.remove(id);
    this.lexical.remove(id);
  }

  /** A filter on a field no stored document has is a mistake worth saying, not an empty result. */
  private acceptor(filters: Filters | undefined): ((id: number) => boolean) | undefined {
    const wanted = Object.entries(filters ?? {});
    if (wanted.length === 0) return undefined;
    for (const [key] of wanted) {
      if (key !== 'source' && !this.keyCounts.has(key)) {
        const known = ['source', ...this.keyCounts.keys()].slice(0, 20).join(', ');
        throw new AppError('invalid_request', `No stored document has metadata "${key}" to filter on (known: ${known})`, {
          details: { field: `filters.${key}` },
        });
      }
    }
    return (id) => {
      const entry = this.entries.get(id);
      return entry !== undefined && wanted.every(([key, value]) => (key === 'source' ? entry.source : entry.metadata[key]) === value);
    };
  }

  private hit({ id, score }: Scored, scores: SearchHit['scores']): SearchHit {
    const entry = this.entries.get(id)!;
    return {
      id: entry.documentId,
      chunk: entry.ordinal,
      score,
      content: entry.content,
      metadata: entry.metadata,
      source: entry.source,
      scores,
    };
  }
}
