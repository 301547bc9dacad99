import type { Handlers } from '../../dispatch.ts';
import type { ParamsStore } from '../params.ts';
import type { Settings } from '../settings.ts';
import { estimateHandlers } from './estimates.ts';
import { generationHandlers } from './generation.ts';
import { modelHandlers } from './models.ts';
import { InferenceStore } from './settings.ts';
import { similarityHandlers } from './similarity.ts';
import type { Upstream } from './upstream.ts';

export interface InferenceOptions {
  upstream: Upstream;
  /** Where the default model and the saved inference settings are kept. */
  settings: Settings;
  params: ParamsStore;
}

/**
 * The inference engine: chat, generation, embeddings, rerank, model management and memory estimates, served by an
 * OpenAI-compatible upstream (plus Ollama's native API where the upstream is Ollama).
 */
export function createInferenceEngine(options: InferenceOptions): Partial<Handlers> {
  const deps = {
    upstream: options.upstream,
    store: new InferenceStore(options.settings),
    params: options.params,
  };
  return {
    ...generationHandlers(deps),
    ...similarityHandlers(deps),
    ...modelHandlers(deps),
    ...estimateHandlers(deps),
  };
}
