import type { Handlers } from '../../dispatch.ts';
import type { Store } from '../../store/types.ts';
import type { Upstream } from '../inference/upstream.ts';
import { hashedEmbedder, upstreamEmbedder } from './embedders.ts';
import { knowledgeHandlers } from './handlers.ts';

export interface KnowledgeOptions {
  store: Store;
  upstream: Upstream;
  /** An upstream embedding model for documents and search; unset: the embedded hashed model. */
  embeddingModel?: string;
}

/** The knowledge engine: chat history, documents, RAG search, similarity, clustering, over the store. */
export function createKnowledgeEngine({ store, upstream, embeddingModel }: KnowledgeOptions): Partial<Handlers> {
  const embedder = embeddingModel ? upstreamEmbedder(upstream, embeddingModel) : hashedEmbedder;
  return knowledgeHandlers({ store, upstream, embedder });
}
