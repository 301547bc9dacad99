import path from 'node:path';
import type { Handlers } from '../../dispatch.ts';
import type { ParamsStore } from '../params.ts';
import { estimateHandlers } from './estimates.ts';
import { generationHandlers } from './generation.ts';
import { modelHandlers } from './models.ts';
import { InferenceStore } from './settings.ts';
import { similarityHandlers } from './similarity.ts';
import { Upstream, type UpstreamConfig } from './upstream.ts';

export interface InferenceOptions {
  upstream: UpstreamConfig;
  /** The server's data directory: inference settings and the default model live in `inference.json` there. */
  dataDir: string;
  params: ParamsStore;
}

/**
 * The inference engine: chat, generation, embeddings, rerank, model management and memory estimates, served by an
 * OpenAI-compatible upstream (plus Ollama's native API where the upstream is Ollama).
 */
export function createInferenceEngine(options: InferenceOptions): Partial<Handlers> {
  const deps = {
    upstream: new Upstream(options.upstream),
    store: new InferenceStore(path.join(options.dataDir, 'inference.json')),
    params: options.params,
  };
  return {
    ...generationHandlers(deps),
    ...similarityHandlers(deps),
    ...modelHandlers(deps),
    ...estimateHandlers(deps),
  };
}
