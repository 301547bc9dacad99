import type { EngineHandlers } from '../../protocol/handlers.ts';
import type { Store } from '../../store/types.ts';
import type { BackendSource } from '../inference/backend.ts';
import { backendEmbedder, hashedEmbedder } from './embedders.ts';
import { knowledgeHandlers } from './handlers.ts';

export interface KnowledgeOptions {
  store: Store;
  backend: BackendSource;
  /** An embedding model of the inference backend for documents and search; unset: the hashed model. */
  embeddingModel?: string;
}

/** The knowledge engine: chat history, documents, RAG search, similarity, clustering, over the store. */
export function createKnowledgeEngine({ store, backend, embeddingModel }: KnowledgeOptions): EngineHandlers<'knowledge'> {
  const embedder = embeddingModel ? backendEmbedder(backend, embeddingModel) : hashedEmbedder;
  return knowledgeHandlers({ store, backend, embedder });
}
