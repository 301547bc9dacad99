import type { CallContext, Handlers } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import type { InferenceDeps } from './context.ts';
import type { OllamaModel, OllamaProgress, OllamaShow } from './ollama.ts';
import { HASHED_MODEL } from '../../knowledge/hashing-embedder.ts';
import { RECIPES } from './recipes.ts';
import { splitModelId } from './settings.ts';

interface Model {
  id: string;
  name?: string;
  size_bytes?: number;
  parameter_count?: string;
  quantization?: string;
  family?: string;
  capabilities?: string[];
  loaded?: boolean;
}

const EMBEDDING_NAME = /embed|bge|e5-|gte|minilm|nomic-bert/i;

/** The embedding model built in: hashed word and character n-grams, no weights, no upstream. */
const EMBEDDED_MODEL: Model = {
  id: HASHED_MODEL,
  name: 'Embedded hashed word and character n-grams (512 dimensions; needs no upstream)',
  capabilities: ['embedding'],
  loaded: true,
};

/** Model management: Ollama's native API where the upstream is Ollama, the OpenAI model list elsewhere. */
export function modelHandlers(
  deps: InferenceDeps,
): Pick<
  Handlers,
  | 'list_models'
  | 'model_info'
  | 'load_model'
  | 'unload_model'
  | 'get_loaded_models'
  | 'select_model'
  | 'pull_model'
  | 'delete_model'
  | 'get_embedding_models'
  | 'get_recipes'
  | 'get_model_quants'
  | 'get_inference_settings'
  | 'save_inference_settings'
> {
  const { upstream, store } = deps;
  const get = async <T>(path: string, signal: AbortSignal) => (await upstream.request(path, { method: 'GET', signal })).json<T>();
  const post = async <T>(path: string, body: unknown, signal: AbortSignal) => (await upstream.request(path, { body, signal })).json<T>();

  /** Every model the upstream offers, with Ollama's details and loaded state where it has them. */
  async function catalog(signal: AbortSignal): Promise<Model[]> {
    if (!(await upstream.resolve()).ollama) {
      const list = await get<{ data?: { id: string }[] }>('/v1/models', signal);
      return (list.data ?? []).map(({ id }) => ({ id }));
    }
    const [tags, running] = await Promise.all([
      get<{ models?: OllamaModel[] }>('/api/tags', signal),
      get<{ models?: OllamaModel[] }>('/api/ps', signal),
    ]);
    const loaded = new Set((running.models ?? []).map((m) => m.name));
    return (tags.models ?? []).map((m) => ({ ...fromOllama(m), loaded: loaded.has(m.name) }));
  }

  async function embeddingModels(signal: AbortSignal): Promise<Model[]> {
    const models = await catalog(signal);
    if (!(await upstream.resolve()).ollama) return models.filter((m) => EMBEDDING_NAME.test(m.id));
    const shows = await Promise.all(models.map((m) => post<OllamaShow>('/api/show', { model: m.id }, signal)));
    return models.map((m, i) => ({ ...m, capabilities: shows[i].capabilities })).filter((m) => m.capabilities?.includes('embedding'));
  }

  async function requireOllama(action: string): Promise<void> {
    if (!(await upstream.resolve()).ollama) {
      throw new AppError('not_supported', `"${action}" needs an Ollama upstream; this OpenAI-compatible server manages its models itself`);
    }
  }

  async function requireModel(id: string, signal: AbortSignal): Promise<Model> {
    const model = (await catalog(signal)).find((m) => m.id === id || m.id === `${id}:latest`);
    if (!model) throw new AppError('not_found', `The upstream has no model "${id}"`, { details: { model_id: id } });
    return model;
  }

  return {
    list_models: async ({ filter }, { signal }) => {
      const needle = filter?.toLowerCase();
      return { models: (await catalog(signal)).filter((m) => !needle || m.id.toLowerCase().includes(needle)) };
    },

    model_info: async ({ model_id }, { signal }) => {
      const model = await requireModel(model_id, signal);
      if (!(await upstream.resolve()).ollama) return { model };
      const show = await post<OllamaShow>('/api/show', { model: model.id }, signal);
      return {
        model: { ...model, capabilities: show.capabilities },
        details: { model_info: show.model_info ?? {}, parameters: show.parameters ?? '', modified_at: show.modified_at },
      };
    },

    load_model: async ({ model_id, variant, force_reload }, ctx) => {
      const id = variant ? `${model_id}:${variant}` : model_id;
      if (!(await upstream.resolve()).ollama) {
        await requireModel(id, ctx.signal); // llama-server, vLLM...: what they serve is loaded
        return { model_id: id, loaded: true };
      }
      const started = Date.now();
      if (force_reload) {
        ctx.event('model_loading_progress', { model_id: id, progress: 0, status: 'unloading' });
        await post('/api/generate', { model: id, keep_alive: 0 }, ctx.signal);
      }
      ctx.event('model_loading_progress', { model_id: id, progress: 0, status: 'loading' });
      // An empty prompt makes Ollama load the model and answer once it is in memory; its own keep_alive applies.
      await post('/api/generate', { model: id }, ctx.signal);
      ctx.event('model_loading_progress', { model_id: id, progress: 1, status: 'loaded' });
      return { model_id: id, loaded: true, load_time_ms: Date.now() - started };
    },

    unload_model: async ({ model_id }, { signal }) => {
      await requireOllama('unload_model');
      await post('/api/generate', { model: model_id, keep_alive: 0 }, signal);
      return { model_id, unloaded: true };
    },

    get_loaded_models: async (_params, { signal }) => {
      if (!(await upstream.resolve()).ollama) return { models: (await catalog(signal)).map((m) => ({ ...m, loaded: true })) };
      const running = await get<{ models?: OllamaModel[] }>('/api/ps', signal);
      return { models: (running.models ?? []).map((m) => ({ ...fromOllama(m), loaded: true })) };
    },

    select_model: async ({ model_id }, { signal, owner }) => {
      const model = await requireModel(model_id, signal);
      return { model_id: model.id, previous: (await store.setDefaultModel(owner, model.id)) ?? null };
    },

    pull_model: async ({ model, quantization }, ctx) => pull(quantization && !model.includes(':') ? `${model}:${quantization}` : model, ctx),

    delete_model: async ({ model_id }, { signal }) => {
      await requireOllama('delete_model');
      await (await upstream.request('/api/delete', { method: 'DELETE', body: { model: model_id }, signal })).text();
      return { success: true, message: `Deleted ${model_id}` };
    },

    /** The embedded model first (it needs no upstream), then the upstream's, when there is one. */
    get_embedding_models: async (_params, { signal }) => {
      const upstreamModels = await embeddingModels(signal).catch((error: unknown) => {
        if (error instanceof AppError && error.code === 'backend_unavailable') return [];
        throw error;
      });
      return { models: [EMBEDDED_MODEL, ...upstreamModels] };
    },

    get_recipes: () => ({ recipes: RECIPES }),

    get_model_quants: async ({ repo_id }, { signal }) => {
      const quants = (await catalog(signal))
        .filter((m) => m.id === repo_id || splitModelId(m.id).repoId === repo_id)
        .map((m) => ({ variant: splitModelId(m.id).variant, size_bytes: m.size_bytes, downloaded: true }));
      return { repo_id, quants };
    },

    get_inference_settings: async ({ repo_id, variant }, { owner }) => ({
      repo_id,
      variant,
      settings: (await store.settingsFor(owner, repo_id, variant)) ?? {},
    }),

    save_inference_settings: async ({ repo_id, variant, settings }, { owner }) => {
      await store.saveSettings(owner, repo_id, variant, settings);
      return { success: true, message: `Saved settings for ${repo_id}:${variant}` };
    },
  };

  /** Pulls through Ollama, passing its progress lines on as `model_pull_progress` events. */
  async function pull(model: string, ctx: CallContext) {
    await requireOllama('pull_model');
    const answer = await upstream.request('/api/pull', { body: { model, stream: true }, signal: ctx.signal });
    let status = 'started';
    for await (const line of answer.ndjson()) {
      const progress = line as OllamaProgress;
      if (progress.error) {
        const code = /does not exist|not found/i.test(progress.error) ? 'not_found' : 'upstream_error';
        throw new AppError(code, `Pulling ${model} failed: ${progress.error}`, { details: { upstream_message: progress.error } });
      }
      status = progress.status ?? status;
      ctx.event('model_pull_progress', {
        model,
        status,
        ...(progress.completed === undefined ? {} : { completed_bytes: progress.completed }),
        ...(progress.total === undefined ? {} : { total_bytes: progress.total }),
      });
    }
    if (status !== 'success') throw new AppError('upstream_error', `Pulling ${model} ended at "${status}", not "success"`);
    return { model, status };
  }
}

function fromOllama(m: OllamaModel): Model {
  return {
    id: m.name,
    name: m.model ?? m.name,
    ...(m.size === undefined ? {} : { size_bytes: m.size }),
    ...(m.details?.parameter_size ? { parameter_count: m.details.parameter_size } : {}),
    ...(m.details?.quantization_level ? { quantization: m.details.quantization_level } : {}),
    ...(m.details?.family ? { family: m.details.family } : {}),
  };
}
