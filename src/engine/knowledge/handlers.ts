import { randomUUID } from 'node:crypto';
import type { CallContext, EngineHandlers } from '../../protocol/handlers.ts';
import { AppError } from '../../errors.ts';
import { kmeans, representativeTerms } from './algorithms/kmeans.ts';
import { retrievalMetrics } from './algorithms/metrics.ts';
import { chunkText, tokenize } from './algorithms/text.ts';
import { cosine, VectorIndex } from './algorithms/vector-index.ts';
import type { DocumentWrite, Metadata, Store } from '../../store/types.ts';
import type { BackendSource } from '../inference/backend.ts';
import { embedderFor, type Embedder } from './embedders.ts';
import { SearchIndex, type Filters } from './search-index.ts';

export interface KnowledgeDeps {
  store: Store;
  /** The inference backend, for the embedding models a request names. */
  backend: BackendSource;
  /** Embeds documents and searches; a request's `model` picks another for the similarity types. */
  embedder: Embedder;
}

/** One ingest call may carry at most this much text: beyond it, send several. */
const MAX_INGEST_BYTES = 32 * 1024 * 1024;
const DEFAULT_HISTORY_LIMIT = 100;
const DEFAULT_TOP_K = 5;
const KMEANS_SEED = 42;

/**
 * History, documents and RAG over the store, with one search index kept in step with it. Each request reads and
 * writes its caller's own data (`ctx.owner`): one API key never sees, searches, replaces or deletes another's.
 */
export function knowledgeHandlers({ store, backend, embedder }: KnowledgeDeps): EngineHandlers<'knowledge'> {
  const index = new SearchIndex(store, embedder);
  const embed = (model: string | undefined, texts: string[], signal: AbortSignal) =>
    embedderFor(backend, model, embedder).embed(texts, signal);

  /** Chunks and embeds the owner's documents, then writes them in one transaction. */
  async function ingest(owner: string, documents: Omit<DocumentWrite, 'chunks'>[], signal: AbortSignal): Promise<number> {
    const chunked = documents.map((document) => ({ ...document, texts: chunkText(document.content) }));
    const vectors = await embedder.embed(chunked.flatMap((d) => d.texts), signal);
    let next = 0;
    await store.addDocuments(
      owner,
      chunked.map(({ texts, ...document }) => ({
        ...document,
        chunks: texts.map((content) => ({ content, vectors: [{ model: embedder.model, vector: vectors[next++] }] })),
      })),
    );
    return vectors.length;
  }

  async function timedSearch(query: string, k: number, filters: Metadata | undefined, mode: 'hybrid' | 'vector', ctx: CallContext) {
    const started = performance.now();
    const results = await index.search(ctx.owner, query, { k, filters: filters as Filters, mode, signal: ctx.signal });
    return { results, query_time_ms: Math.round((performance.now() - started) * 1000) / 1000, embedding_model: embedder.model };
  }

  return {
    chat_history: async ({ session_id, limit }, { owner }) => ({
      messages: await store.chatHistory(owner, { session_id, limit: limit ?? DEFAULT_HISTORY_LIMIT }),
    }),

    /** Saved messages are searchable too, as documents of source `message`. */
    save_message: async ({ session_id, message }, { owner, signal }) => {
      const saved = await store.saveMessage(owner, { session_id, ...message });
      if (message.content.trim()) {
        const metadata = { ...message.metadata, session_id, role: message.role };
        await ingest(owner, [{ id: `message:${saved.id}`, content: message.content, metadata, source: 'message' }], signal);
      }
      return { message_id: saved.id };
    },

    add_documents: async ({ documents }, { owner, signal }) => {
      const bytes = documents.reduce((sum, d) => sum + d.content.length, 0);
      if (bytes > MAX_INGEST_BYTES) {
        throw new AppError('payload_too_large', `${bytes} characters in one add_documents; send at most ${MAX_INGEST_BYTES} per call`);
      }
      const ids = documents.map((d) => d.id ?? randomUUID());
      const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
      if (duplicate) throw new AppError('invalid_request', `Document id "${duplicate}" appears twice`, { details: { field: 'documents' } });
      const chunks = await ingest(
        owner,
        documents.map((d, i) => ({ id: ids[i], content: d.content, metadata: d.metadata ?? {}, source: 'document' as const })),
        signal,
      );
      return { ids, chunks, embedding_model: embedder.model };
    },

    delete_documents: async ({ ids }, { owner }) => ({ deleted: await store.deleteDocuments(owner, ids) }),

    list_documents: ({ limit, offset, source }, { owner }) => store.listDocuments(owner, { limit: limit ?? 100, offset: offset ?? 0, source }),

    rag_query: ({ query, top_k, filters }, ctx) => timedSearch(query, top_k ?? DEFAULT_TOP_K, filters, 'hybrid', ctx),

    semantic_search_query: ({ query, k, filters }, ctx) => timedSearch(query, k, filters, 'vector', ctx),

    calculate_similarity: async ({ text1, text2, model }, { signal }) => {
      const [a, b] = await embed(model, [text1, text2], signal);
      return { similarity: cosine(a, b), model: model ?? embedder.model };
    },

    /** Query i's relevant document is document i; the other documents are distractors. */
    evaluate_embeddings: async ({ model, queries, documents }, { signal }) => {
      if (documents.length < queries.length) {
        throw new AppError('invalid_request', `Query i is paired with document i: give at least ${queries.length} documents`, {
          details: { field: 'documents' },
        });
      }
      const vectors = await embed(model, [...queries, ...documents], signal);
      const corpus = new VectorIndex(vectors[0].length);
      documents.forEach((_, i) => corpus.add(i, vectors[queries.length + i]));
      const rankings = queries.map((_, q) => corpus.search(vectors[q], documents.length).map((hit) => hit.id));
      return { model, metrics: retrievalMetrics(rankings, queries.map((_, q) => q)) };
    },

    cluster_documents: async ({ documents, n_clusters: k, model }, { signal }) => {
      if (k > documents.length) {
        throw new AppError('invalid_request', `n_clusters (${k}) is more than the ${documents.length} documents`, {
          details: { field: 'n_clusters' },
        });
      }
      const vectors = await embed(model, documents, signal);
      const { assignments } = kmeans(vectors, k, { seed: KMEANS_SEED });
      const terms = representativeTerms(documents.map(tokenize), assignments, k);
      const sizes = new Array<number>(k).fill(0);
      for (const cluster of assignments) sizes[cluster]++;
      return { assignments, clusters: terms.map((words, id) => ({ id, size: sizes[id], terms: words })) };
    },

    recommend_content: async ({ query, candidates, top_n: topN, model }, { signal }) => {
      if (topN > candidates.length) {
        throw new AppError('invalid_request', `top_n (${topN}) is more than the ${candidates.length} candidates`, {
          details: { field: 'top_n' },
        });
      }
      const [queryVector, ...candidateVectors] = await embed(model, [query, ...candidates], signal);
      const corpus = new VectorIndex(queryVector.length);
      candidateVectors.forEach((vector, i) => corpus.add(i, vector));
      return {
        recommendations: corpus.search(queryVector, topN).map(({ id, score }) => ({ index: id, score, content: candidates[id] })),
      };
    },
  };
}
