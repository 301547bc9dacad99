import { HASHED_MODEL, embedHashed } from '../../knowledge/hashing-embedder.ts';
import { upstreamEmbeddings } from '../inference/similarity.ts';
import type { Upstream } from '../inference/upstream.ts';

/** Turns texts into vectors, named by the model that made them (a search never mixes models). */
export interface Embedder {
  readonly model: string;
  embed(texts: string[], signal: AbortSignal): Promise<Float32Array[]>;
}

/** The upstream is asked for this many texts at a time: servers cap their batch sizes. */
const UPSTREAM_BATCH = 64;

export const hashedEmbedder: Embedder = {
  model: HASHED_MODEL,
  embed: async (texts) => texts.map((text) => embedHashed(text)),
};

export function upstreamEmbedder(upstream: Upstream, model: string): Embedder {
  return {
    model,
    async embed(texts, signal) {
      const vectors: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += UPSTREAM_BATCH) {
        const { embeddings } = await upstreamEmbeddings(upstream, model, texts.slice(start, start + UPSTREAM_BATCH), signal);
        for (const embedding of embeddings) vectors.push(Float32Array.from(embedding));
      }
      return vectors;
    },
  };
}

/** The embedder for a model name: the embedded hashed model by its name, any other name from the upstream. */
export function embedderFor(upstream: Upstream, model: string | undefined, fallback: Embedder): Embedder {
  if (!model || model === fallback.model) return fallback;
  return model === HASHED_MODEL ? hashedEmbedder : upstreamEmbedder(upstream, model);
}
