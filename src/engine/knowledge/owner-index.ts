import { AppError } from '../../errors.ts';
import { Bm25Index } from './algorithms/bm25.ts';
import { reciprocalRankFusion } from './algorithms/fusion.ts';
import { tokenize } from './algorithms/text.ts';
import { VectorIndex, type Scored } from './algorithms/vector-index.ts';
import type { DocumentSource, Metadata, StoredChunk } from '../../store/types.ts';

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

export interface SearchOptions {
  k: number;
  filters?: Filters;
  mode: 'hybrid' | 'vector';
}

interface Entry {
  documentId: string;
  ordinal: number;
  content: string;
  metadata: Metadata;
  source: DocumentSource;
}

/** Each ranking contributes this many candidates (at least) to the fusion. */
const CANDIDATES = 50;

/**
 * One owner's chunks, searchable: BM25 and exact cosine search. Owners never share one, so nothing of another's
 * documents shows in a search, not even through BM25's term statistics or the metadata keys a filter may name.
 */
export class OwnerIndex {
  private readonly entries = new Map<number, Entry>();
  private readonly chunksOf = new Map<string, number[]>();
  private readonly keyCounts = new Map<string, number>();
  private readonly lexical = new Bm25Index();
  private vectors: VectorIndex | undefined;

  get size(): number {
    return this.entries.size;
  }

  /** `hybrid`: BM25 and vectors fused by rank (RRF); `vector`: cosine only. Filters are metadata equalities. */
  search(query: string, queryVector: Float32Array, { k, filters, mode }: SearchOptions): SearchHit[] {
    const accept = this.acceptor(filters);
    const pool = Math.max(k * 4, CANDIDATES);
    const byVector = this.vectors?.search(queryVector, mode === 'vector' ? k : pool, accept) ?? [];
    if (mode === 'vector') return byVector.map((hit) => this.hit(hit, { vector: hit.score }));

    const byWords = this.lexical.search(tokenize(query), pool, accept);
    const vectorScore = new Map(byVector.map((h) => [h.id, h.score]));
    const lexicalScore = new Map(byWords.map((h) => [h.id, h.score]));
    return reciprocalRankFusion([byVector, byWords])
      .slice(0, k)
      .map((hit) => this.hit(hit, { vector: vectorScore.get(hit.id), lexical: lexicalScore.get(hit.id) }));
  }

  /** Adds a chunk that has its vector, under the embedding model `model` (named in a dimension mismatch). */
  add(chunk: StoredChunk & { vector: Float32Array }, model: string): void {
    const { vector } = chunk;
    this.vectors ??= new VectorIndex(vector.length);
    if (vector.length !== this.vectors.dims) {
      throw new AppError('upstream_error', `"${model}" returned ${vector.length} dimensions, not ${this.vectors.dims}`);
    }
    const { id, document_id: documentId, ordinal, content, metadata, source } = chunk;
    this.entries.set(id, { documentId, ordinal, content, metadata, source });
    this.chunksOf.set(documentId, [...(this.chunksOf.get(documentId) ?? []), id]);
    for (const key of Object.keys(metadata)) this.keyCounts.set(key, (this.keyCounts.get(key) ?? 0) + 1);
    this.vectors.add(id, vector);
    this.lexical.add(id, tokenize(content));
  }

  /** Drops every chunk of `documentId` with an id up to `upToChunkId` (a replaced document keeps its newer ones). */
  removeDocument(documentId: string, upToChunkId: number): void {
    const ids = this.chunksOf.get(documentId) ?? [];
    const kept = ids.filter((id) => id > upToChunkId);
    for (const id of ids) if (id <= upToChunkId) this.remove(id);
    if (kept.length) this.chunksOf.set(documentId, kept);
    else this.chunksOf.delete(documentId);
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
