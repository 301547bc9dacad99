import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { InferenceBackend, KeepAlive, Model } from '../backend.ts';
import type { ModelFacts } from '../memory.ts';
import { splitModelId } from '../model-settings.ts';
import type { Upstream } from './client.ts';
import { modelInfoNumber, type OllamaModel, type OllamaProgress, type OllamaShow } from './ollama.ts';

const EMBEDDING_NAME = /embed|bge|e5-|gte|minilm|nomic-bert/i;

type ModelMembers = 'models' | 'modelInfo' | 'load' | 'unload' | 'loadedModels' | 'pull' | 'remove' | 'embeddingModels' | 'quants' | 'facts';

/** Model management: Ollama's native API where the upstream is Ollama, the OpenAI model list elsewhere. */
export function upstreamModels(upstream: Upstream): Pick<InferenceBackend, ModelMembers> {
  const get = async <T>(path: string, signal: AbortSignal) => (await upstream.request(path, { method: 'GET', signal })).json<T>();
  const post = async <T>(path: string, body: unknown, signal: AbortSignal) => (await upstream.request(path, { body, signal })).json<T>();
  const isOllama = async () => (await upstream.resolve()).ollama;

  /** Every model the upstream offers, with Ollama's details and loaded state where it has them. */
  async function catalog(signal: AbortSignal): Promise<Model[]> {
    if (!(await isOllama())) {
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

  async function requireOllama(action: string): Promise<void> {
    if (!(await isOllama())) {
      throw new AppError('not_supported', `"${action}" needs an Ollama upstream; this OpenAI-compatible server manages its models itself`);
    }
  }

  async function requireModel(id: string, signal: AbortSignal): Promise<Model> {
    const model = (await catalog(signal)).find((m) => m.id === id || m.id === `${id}:latest`);
    if (!model) throw new AppError('not_found', `The upstream has no model "${id}"`, { details: { model_id: id } });
    return model;
  }

  return {
    models: catalog,

    modelInfo: async (id, signal) => {
      const model = await requireModel(id, signal);
      if (!(await isOllama())) return { model };
      const show = await post<OllamaShow>('/api/show', { model: model.id }, signal);
      const contextLength = modelInfoNumber(show.model_info, 'context_length');
      return {
        model: { ...model, capabilities: show.capabilities, ...(contextLength === undefined ? {} : { context_length: contextLength }) },
        details: { model_info: show.model_info ?? {}, parameters: show.parameters ?? '', modified_at: show.modified_at },
      };
    },

    load: async (id, { forceReload, keepAlive }, ctx) => {
      if (!(await isOllama())) {
        await requireModel(id, ctx.signal); // llama-server, vLLM...: what they serve is loaded
        return { model_id: id, loaded: true };
      }
      const started = Date.now();
      if (forceReload) {
        ctx.event('model_loading_progress', { model_id: id, progress: 0, status: 'unloading' });
        await post('/api/generate', { model: id, keep_alive: 0 }, ctx.signal);
      }
      ctx.event('model_loading_progress', { model_id: id, progress: 0, status: 'loading' });
      // An empty prompt makes Ollama load the model and answer once it is in memory; its own keep_alive applies.
      await post('/api/generate', { model: id, ...keepAliveField(keepAlive) }, ctx.signal);
      ctx.event('model_loading_progress', { model_id: id, progress: 1, status: 'loaded' });
      return { model_id: id, loaded: true, load_time_ms: Date.now() - started };
    },

    unload: async (id, signal) => {
      await requireOllama('unload_model');
      await post('/api/generate', { model: id, keep_alive: 0 }, signal);
    },

    loadedModels: async (signal) => {
      if (!(await isOllama())) return (await catalog(signal)).map((m) => ({ ...m, loaded: true }));
      const running = await get<{ models?: OllamaModel[] }>('/api/ps', signal);
      return (running.models ?? []).map((m) => ({ ...fromOllama(m), loaded: true }));
    },

    pull: async ({ model, quantization }, ctx) => pull(quantization && !model.includes(':') ? `${model}:${quantization}` : model, ctx),

    remove: async (id, signal) => {
      await requireOllama('delete_model');
      await (await upstream.request('/api/delete', { method: 'DELETE', body: { model: id }, signal })).text();
    },

    embeddingModels: async (signal) => {
      const models = await catalog(signal);
      if (!(await isOllama())) return models.filter((m) => EMBEDDING_NAME.test(m.id));
      const shows = await Promise.all(models.map((m) => post<OllamaShow>('/api/show', { model: m.id }, signal)));
      return models.map((m, i) => ({ ...m, capabilities: shows[i].capabilities })).filter((m) => m.capabilities?.includes('embedding'));
    },

    quants: async (repoId, signal) =>
      (await catalog(signal))
        .filter((m) => m.id === repoId || splitModelId(m.id).repoId === repoId)
        .map((m) => ({ variant: splitModelId(m.id).variant, size_bytes: m.size_bytes, downloaded: true })),

    /** Ollama reports a model's size, parameters, quantization and shape; other upstreams none of it. */
    facts: async (model, signal) => {
      if (!(await isOllama())) return undefined;
      const [show, tags] = await Promise.all([
        post<OllamaShow>('/api/show', { model }, signal),
        get<{ models?: OllamaModel[] }>('/api/tags', signal),
      ]);
      const info = show.model_info;
      const parameterCount = info?.['general.parameter_count'];
      const facts: ModelFacts = {
        model,
        quantization: show.details?.quantization_level,
        parameterCount: typeof parameterCount === 'number' ? parameterCount : undefined,
        sizeBytes: tags.models?.find((m) => m.name === model || m.name === `${model}:latest`)?.size,
        contextLength: modelInfoNumber(info, 'context_length'),
        layers: modelInfoNumber(info, 'block_count'),
        embeddingLength: modelInfoNumber(info, 'embedding_length'),
        headCount: modelInfoNumber(info, 'attention.head_count'),
        headCountKv: modelInfoNumber(info, 'attention.head_count_kv'),
      };
      return facts;
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

/** Ollama takes `keep_alive` as we do (seconds or a duration), so it goes through as given. */
function keepAliveField(keepAlive: KeepAlive | undefined): { keep_alive?: KeepAlive } {
  return keepAlive === undefined ? {} : { keep_alive: keepAlive };
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
