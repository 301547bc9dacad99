import type { EngineHandlers } from '../../protocol/handlers.ts';
import type { ParamsStore } from '../params.ts';
import type { Settings } from '../settings.ts';
import type { BackendSource } from './backend.ts';
import { estimateHandlers } from './estimates.ts';
import { generationHandlers } from './generation.ts';
import { modelHandlers } from './models.ts';
import { ModelSettings } from './model-settings.ts';
import { similarityHandlers } from './similarity.ts';

export { chooseBackend, type BackendChoice } from './select.ts';
export type { BackendSource, InferenceBackend } from './backend.ts';

export interface InferenceOptions {
  /** What serves each request: an upstream or the embedded engine (`chooseBackend`). */
  backend: BackendSource;
  /** Where the default model and the saved inference settings are kept. */
  settings: Settings;
  params: ParamsStore;
}

/**
 * The inference engine: chat, generation, embeddings, rerank, model management and memory estimates. The handlers
 * resolve defaults and check requests; the backend (an upstream server, or GGUF models in this process) runs them.
 */
export function createInferenceEngine(options: InferenceOptions): EngineHandlers<'inference'> {
  const deps = {
    backend: options.backend,
    modelSettings: new ModelSettings(options.settings),
    params: options.params,
  };
  return {
    ...generationHandlers(deps),
    ...similarityHandlers(deps),
    ...modelHandlers(deps),
    ...estimateHandlers(deps),
  };
}
