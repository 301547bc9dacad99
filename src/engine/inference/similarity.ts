import type { Handlers } from '../../protocol/handlers.ts';
import { AppError } from '../../errors.ts';
import { cosine } from '../knowledge/algorithms/vector-index.ts';
import type { InferenceDeps } from './context.ts';

function requireEmbeddingModel(model: string | undefined): string {
  if (!model) throw new AppError('invalid_request', 'Name an embedding model in "model" (see get_embedding_models)', { details: { field: 'model' } });
  return model;
}

/** Embeddings from the backend; rerank through its rerank endpoint, else scored with its embeddings. */
export function similarityHandlers({ backend }: InferenceDeps) {
  return {
    embeddings: async ({ model, input, keep_alive }, { signal }) =>
      (await backend()).embed(requireEmbeddingModel(model), typeof input === 'string' ? [input] : input, signal, keep_alive),

    rerank: async ({ model, query, documents, top_n: topN }, { signal }) => {
      const served = await backend();
      const keep = topN ?? documents.length;
      const ranked = await served.rerank(model, query, documents, keep, signal);
      if (ranked) return { ...ranked, method: 'rerank_endpoint' as const };
      const { model: used, embeddings } = await served.embed(requireEmbeddingModel(model), [query, ...documents], signal);
      const [queryVector, ...documentVectors] = embeddings;
      const results = documentVectors
        .map((vector, index) => ({ index, score: cosine(queryVector, vector), document: documents[index] }))
        .sort((a, b) => b.score - a.score)
        .slice(0, keep);
      return { model: used, method: 'embeddings' as const, results };
    },
  } satisfies Partial<Handlers>;
}
