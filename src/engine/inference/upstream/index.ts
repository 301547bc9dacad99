import { AppError } from '../../../errors.ts';
import type { Embeddings, InferenceBackend } from '../backend.ts';
import { isMissingRoute, type Upstream } from './client.ts';
import { upstreamGeneration } from './generation.ts';
import { upstreamModels } from './models.ts';

interface EmbeddingList {
  model?: string;
  data?: { index: number; embedding: number[] }[];
  usage?: { prompt_tokens?: number; total_tokens?: number };
}

/** An OpenAI-compatible server (plus Ollama's native API where it is Ollama) as the inference backend. */
export function upstreamBackend(upstream: Upstream): InferenceBackend {
  return {
    name: 'upstream',
    ...upstreamGeneration(upstream),
    ...upstreamModels(upstream),
    howToAddModels: () => 'the upstream lists none (with Ollama: ollama pull <model>, or pull_model)',

    embed: async (model, input, signal): Promise<Embeddings> => {
      const answer = await (await upstream.request('/v1/embeddings', { body: { model, input }, signal })).json<EmbeddingList>();
      const vectors = [...(answer.data ?? [])].sort((a, b) => a.index - b.index).map((d) => d.embedding);
      if (vectors.length !== input.length || vectors.some((v) => !Array.isArray(v))) {
        throw new AppError('upstream_error', `The upstream returned ${vectors.length} embeddings for ${input.length} inputs`);
      }
      const prompt = answer.usage?.prompt_tokens ?? 0;
      return {
        model: answer.model ?? model,
        embeddings: vectors,
        usage: { prompt_tokens: prompt, completion_tokens: 0, total_tokens: answer.usage?.total_tokens ?? prompt },
      };
    },

    /** llama.cpp's and vLLM's `/v1/rerank`; Ollama and OpenAI have none. */
    rerank: async (model, query, documents, topN, signal) => {
      try {
        const body = { ...(model ? { model } : {}), query, documents, top_n: topN };
        const answer = await (await upstream.request('/v1/rerank', { body, signal })).json<{
          results?: { index: number; relevance_score: number }[];
        }>();
        const results = (answer.results ?? [])
          .filter((r) => documents[r.index] !== undefined)
          .sort((a, b) => b.relevance_score - a.relevance_score)
          .slice(0, topN)
          .map((r) => ({ index: r.index, score: r.relevance_score, document: documents[r.index] }));
        return { model: model ?? 'upstream', results };
      } catch (error) {
        if (isMissingRoute(error)) return undefined;
        throw error;
      }
    },
  };
}
