import type { Handlers } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import type { InferenceDeps } from './context.ts';
import { cosine } from '../../knowledge/vector-index.ts';
import { isMissingRoute, type Upstream } from './upstream.ts';

interface EmbeddingList {
  model?: string;
  data?: { index: number; embedding: number[] }[];
  usage?: { prompt_tokens?: number; total_tokens?: number };
}

/** The upstream's embeddings of `input`, in input order. */
export async function upstreamEmbeddings(upstream: Upstream, model: string | undefined, input: string | string[], signal: AbortSignal) {
  if (!model) throw new AppError('invalid_request', 'Name an embedding model in "model" (see get_embedding_models)', { details: { field: 'model' } });
  const answer = await (await upstream.request('/v1/embeddings', { body: { model, input }, signal })).json<EmbeddingList>();
  const vectors = [...(answer.data ?? [])].sort((a, b) => a.index - b.index).map((d) => d.embedding);
  const expected = typeof input === 'string' ? 1 : input.length;
  if (vectors.length !== expected || vectors.some((v) => !Array.isArray(v))) {
    throw new AppError('upstream_error', `The upstream returned ${vectors.length} embeddings for ${expected} inputs`);
  }
  const prompt = answer.usage?.prompt_tokens ?? 0;
  return {
    model: answer.model ?? model,
    embeddings: vectors,
    usage: { prompt_tokens: prompt, completion_tokens: 0, total_tokens: answer.usage?.total_tokens ?? prompt },
  };
}

/** Embeddings from the upstream; rerank through its rerank endpoint, else scored with its embeddings. */
export function similarityHandlers(deps: InferenceDeps): Pick<Handlers, 'embeddings' | 'rerank'> {
  const { upstream } = deps;
  const embed = (model: string | undefined, input: string | string[], signal: AbortSignal) =>
    upstreamEmbeddings(upstream, model, input, signal);

  return {
    embeddings: ({ model, input }, { signal }) => embed(model, input, signal),

    rerank: async ({ model, query, documents, top_n: topN }, { signal }) => {
      const keep = topN ?? documents.length;
      try {
        const body = { ...(model ? { model } : {}), query, documents, top_n: keep };
        const answer = await (await upstream.request('/v1/rerank', { body, signal })).json<{
          results?: { index: number; relevance_score: number }[];
        }>();
        const results = (answer.results ?? [])
          .filter((r) => documents[r.index] !== undefined)
          .sort((a, b) => b.relevance_score - a.relevance_score)
          .slice(0, keep)
          .map((r) => ({ index: r.index, score: r.relevance_score, document: documents[r.index] }));
        return { model: model ?? 'upstream', method: 'rerank_endpoint' as const, results };
      } catch (error) {
        if (!isMissingRoute(error)) throw error; // Ollama and OpenAI have no rerank endpoint
      }
      const { model: used, embeddings } = await embed(model, [query, ...documents], signal);
      const [queryVector, ...documentVectors] = embeddings;
      const results = documentVectors
        .map((vector, index) => ({ index, score: cosine(queryVector, vector), document: documents[index] }))
        .sort((a, b) => b.score - a.score)
        .slice(0, keep);
      return { model: used, method: 'embeddings' as const, results };
    },
  };
}
