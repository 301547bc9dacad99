import type { Store, StoredChunk } from '../../store/types.ts';
import type { Embedder } from './embedders.ts';
import { OwnerIndex, type SearchHit, type SearchOptions } from './owner-index.ts';

export type { Filters, SearchHit } from './owner-index.ts';

/** Chunks read from the store per query while catching up. */
const PAGE = 2_000;

/**
 * The in-memory search index over the store's chunks for one embedding model, one `OwnerIndex` per owner.
 * The store stays the truth: before each search the index reads what was added or deleted since it last looked
 * (in this instance or any other sharing the database), embedding chunks that lack this model's vector.
 */
export class SearchIndex {
  private readonly owners = new Map<string, OwnerIndex>();
  private lastChunkId = 0;
  private lastDeletion = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    readonly embedder: Embedder,
  ) {}

  /** Chunks indexed, of every owner. */
  get size(): number {
    let size = 0;
    for (const index of this.owners.values()) size += index.size;
    return size;
  }

  /** Catches up with the store; concurrent callers share the work in order. */
  sync(signal: AbortSignal): Promise<void> {
    const run = this.tail.then(() => this.pull(signal));
    this.tail = run.catch(() => {});
    return run;
  }

  /** Searches `owner`'s documents only. */
  async search(owner: string, query: string, options: SearchOptions & { signal: AbortSignal }): Promise<SearchHit[]> {
    await this.sync(options.signal);
    const [queryVector] = await this.embedder.embed([query], options.signal);
    return (this.owners.get(owner) ?? new OwnerIndex()).search(query, queryVector, options);
  }

  private async pull(signal: AbortSignal): Promise<void> {
    for (;;) {
      const chunks = await this.store.chunksSince(this.lastChunkId, this.embedder.model, PAGE);
      if (chunks.length === 0) break;
      await this.embedMissing(chunks, signal);
      for (const chunk of chunks) this.ownerIndex(chunk.owner).add(chunk as StoredChunk & { vector: Float32Array }, this.embedder.model);
      this.lastChunkId = chunks[chunks.length - 1].id;
      if (chunks.length < PAGE) break;
    }
    for (const deletion of await this.store.deletionsSince(this.lastDeletion)) {
      this.owners.get(deletion.owner)?.removeDocument(deletion.document_id, deletion.up_to_chunk_id);
      this.lastDeletion = deletion.seq;
    }
  }

  private ownerIndex(owner: string): OwnerIndex {
    let index = this.owners.get(owner);
    if (!index) this.owners.set(owner, (index = new OwnerIndex()));
    return index;
  }

  /** Chunks stored before this model was in use get their vectors now, and keep them. */
  private async embedMissing(chunks: StoredChunk[], signal: AbortSignal): Promise<void> {
    const missing = chunks.filter((chunk) => !chunk.vector);
    if (missing.length === 0) return;
    const vectors = await this.embedder.embed(missing.map((chunk) => chunk.content), signal);
    missing.forEach((chunk, i) => (chunk.vector = vectors[i]));
    await this.store.putVectors(this.embedder.model, missing.map((chunk, i) => ({ chunk_id: chunk.id, vector: vectors[i] })));
  }
}
