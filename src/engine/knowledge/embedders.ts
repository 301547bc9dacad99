import { HASHED_MODEL, embedHashed } from './algorithms/hashing-embedder.ts';
import type { BackendSource } from '../inference/backend.ts';

/** Turns texts into vectors, named by the model that made them (a search never mixes models). */
export interface Embedder {
  readonly model: string;
  embed(texts: string[], signal: AbortSignal): Promise<Float32Array[]>;
}

/** The backend is asked for this many texts at a time: servers cap their batch sizes. */
const BATCH = 64;

export const hashedEmbedder: Embedder = {
  model: HASHED_MODEL,
  embed: async (texts) => texts.map((text) => embedHashed(text)),
};

/** A model of the inference backend: an upstream's embedding model, or a GGUF model of the embedded engine. */
export function backendEmbedder(backend: BackendSource, model: string): Embedder {
  return {
    model,
    async embed(texts, signal) {
      const served = await backend();
      const vectors: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += BATCH) {
        const { embeddings } = await served.embed(model, texts.slice(start, start + BATCH), signal);
        for (const embedding of embeddings) vectors.push(Float32Array.from(embedding));
      }
      return vectors;
    },
  };
}

/** The embedder for a model name: the hashed model by its name, any other name from the inference backend. */
export function embedderFor(backend: BackendSource, model: string | undefined, fallback: Embedder): Embedder {
  if (!model || model === fallback.model) return fallback;
  return model === HASHED_MODEL ? hashedEmbedder : backendEmbedder(backend, model);
}
