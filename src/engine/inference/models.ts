import type { Handlers } from '../../protocol/handlers.ts';
import { AppError } from '../../errors.ts';
import { HASHED_MODEL } from '../knowledge/algorithms/hashing-embedder.ts';
import type { InferenceBackend, Model } from './backend.ts';
import type { InferenceDeps } from './context.ts';
import { RECIPES } from './recipes.ts';

/** The embedding model built in: hashed word and character n-grams, no weights, no backend. */
const HASHED_EMBEDDING_MODEL: Model = {
  id: HASHED_MODEL,
  name: 'Embedded hashed word and character n-grams (512 dimensions; needs no model)',
  capabilities: ['embedding'],
  loaded: true,
};

/** A model the backend has, by its id (or Ollama's `:latest` of it); `not_found` otherwise. */
export async function requireModel(backend: InferenceBackend, id: string, signal: AbortSignal): Promise<Model> {
  const model = (await backend.models(signal)).find((m) => m.id === id || m.id === `${id}:latest`);
  if (!model) {
    const where = backend.name === 'embedded' ? 'The models directory has' : 'The upstream has';
    throw new AppError('not_found', `${where} no model "${id}"`, { details: { model_id: id } });
  }
  return model;
}

/** Model management, through whichever backend serves; settings and recipes need none. */
export function modelHandlers(
  deps: InferenceDeps,
) {
  const { backend, modelSettings } = deps;
  return {
    list_models: async ({ filter }, { signal }) => {
      const needle = filter?.toLowerCase();
      return { models: (await (await backend()).models(signal)).filter((m) => !needle || m.id.toLowerCase().includes(needle)) };
    },

    model_info: async ({ model_id }, { signal }) => (await backend()).modelInfo(model_id, signal),

    load_model: async ({ model_id, variant, force_reload, keep_alive }, ctx) => {
      const id = variant ? `${model_id}:${variant}` : model_id;
      return (await backend()).load(id, { forceReload: force_reload, keepAlive: keep_alive }, ctx);
    },

    unload_model: async ({ model_id }, { signal }) => {
      await (await backend()).unload(model_id, signal);
      return { model_id, unloaded: true };
    },

    get_loaded_models: async (_params, { signal }) => ({ models: await (await backend()).loadedModels(signal) }),

    select_model: async ({ model_id }, { signal, owner }) => {
      const model = await requireModel(await backend(), model_id, signal);
      return { model_id: model.id, previous: (await modelSettings.setDefaultModel(owner, model.id)) ?? null };
    },

    pull_model: async (request, ctx) => (await backend()).pull(request, ctx),

    delete_model: async ({ model_id }, { signal }) => {
      await (await backend()).remove(model_id, signal);
      return { success: true, message: `Deleted ${model_id}` };
    },

    /** The hashed model first (it needs nothing), then the backend's, when there is one. */
    get_embedding_models: async (_params, { signal }) => {
      const served = await backend()
        .then((b) => b.embeddingModels(signal))
        .catch((error: unknown) => {
          if (error instanceof AppError && error.code === 'backend_unavailable') return [];
          throw error;
        });
      return { models: [HASHED_EMBEDDING_MODEL, ...served] };
    },

    get_recipes: () => ({ recipes: RECIPES }),

    get_model_quants: async ({ repo_id }, { signal }) => ({ repo_id, quants: await (await backend()).quants(repo_id, signal) }),

    get_inference_settings: async ({ repo_id, variant }, { owner }) => ({
      repo_id,
      variant,
      settings: (await modelSettings.settingsFor(owner, repo_id, variant)) ?? {},
    }),

    save_inference_settings: async ({ repo_id, variant, settings }, { owner }) => {
      await modelSettings.saveSettings(owner, repo_id, variant, settings);
      return { success: true, message: `Saved settings for ${repo_id}:${variant}` };
    },
  } satisfies Partial<Handlers>;
}
