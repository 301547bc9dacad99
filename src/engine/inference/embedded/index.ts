import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { InferenceBackend, KeepAlive, Model } from '../backend.ts';
import { ModelCatalog, type CatalogEntry } from './catalog.ts';
import { runChat } from './chat.ts';
import { runCompletion } from './complete.ts';
import { factsOf, formatParameterCount } from './gguf.ts';
import type { LoadedModel } from './loaded-model.ts';
import { contextFor, ModelPool, type PoolOptions } from './pool.ts';
import { pullModel } from './pull.ts';
import { LlamaRuntime, type RuntimeOptions } from './runtime.ts';

export interface EmbeddedOptions extends PoolOptions, RuntimeOptions {
  modelsDir: string;
  hubUrl: string;
  /** A download silent this long fails (and can be resumed). */
  idleTimeoutMs: number;
}

/**
 * The engine in the server's own process: GGUF models from the models directory, run by llama.cpp through
 * node-llama-cpp. A model loads on first use (or `load_model`) and unloads when idle past its keep-alive.
 */
export class EmbeddedEngine implements InferenceBackend {
  readonly name = 'embedded';
  private readonly runtime: LlamaRuntime;
  private readonly catalog: ModelCatalog;
  private readonly pool: ModelPool;

  constructor(private readonly options: EmbeddedOptions) {
    this.runtime = new LlamaRuntime(options);
    this.catalog = new ModelCatalog(options.modelsDir, this.runtime);
    this.pool = new ModelPool(this.runtime, this.catalog, options);
  }

  async chat(...[call, ctx]: Parameters<InferenceBackend['chat']>) {
    const [lib, llama] = await Promise.all([this.runtime.lib(), this.runtime.native()]);
    return this.use(call.model, call.keepAlive, ctx, (loaded) => runChat(lib, llama, loaded, call, ctx));
  }

  async complete(...[call, ctx]: Parameters<InferenceBackend['complete']>) {
    const lib = await this.runtime.lib();
    return this.use(call.model, call.keepAlive, ctx, (loaded) => runCompletion(lib, loaded, call, ctx));
  }

  /** No Responses API here: the handler runs such a request as a chat. */
  async respond() {
    return undefined;
  }

  async embed(model: string, input: string[], signal: AbortSignal, keepAlive?: KeepAlive) {
    const entry = await this.catalog.get(model);
    const { vectors, tokens } = await this.pool.use(entry, { keepAlive, signal }, (loaded) => loaded.embed(input, signal));
    return { model: entry.id, embeddings: vectors, usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens } };
  }

  /** No reranking model type here: the handler scores with embeddings. */
  async rerank() {
    return undefined;
  }

  howToAddModels(): string {
    return `put a GGUF file in the models directory ${this.catalog.dir} (TABAGENT_MODELS_DIR), pull_model one (its URL, or owner/repo/file.gguf), or set TABAGENT_UPSTREAM_URL to use an inference server`;
  }

  async models(): Promise<Model[]> {
    return (await this.catalog.list()).map((entry) => this.describe(entry));
  }

  async modelInfo(id: string) {
    const entry = await this.catalog.get(id);
    const d = entry.description;
    const loaded = this.pool.get(entry.id);
    return {
      model: this.describe(entry),
      details: {
        path: entry.path,
        architecture: d.architecture,
        parameter_count: d.parameterCount,
        quantization: d.quantization,
        ...(d.contextLength === undefined ? {} : { trained_context_length: d.contextLength }),
        context_length: this.contextLength(entry),
        ...(d.embeddingLength === undefined ? {} : { embedding_length: d.embeddingLength }),
        ...(d.layers === undefined ? {} : { block_count: d.layers }),
        ...(d.headCount === undefined ? {} : { head_count: d.headCount }),
        ...(d.headCountKv === undefined ? {} : { head_count_kv: d.headCountKv }),
        chat_template: d.hasChatTemplate,
        ...(loaded ? { load_time_ms: loaded.loadTimeMs, estimated_bytes: loaded.estimatedBytes } : {}),
      },
    };
  }

  async load(id: string, { forceReload, keepAlive }: { forceReload?: boolean; keepAlive?: KeepAlive }, ctx: CallContext) {
    const entry = await this.catalog.get(id);
    const started = performance.now();
    const loaded = await this.pool.load(entry, { keepAlive, force: forceReload, signal: ctx.signal, progress: (update) => ctx.event('model_loading_progress', update) });
    return { model_id: entry.id, loaded: true, load_time_ms: Math.round(performance.now() - started), context_length: loaded.contextLength };
  }

  async unload(id: string) {
    await this.pool.unload((await this.catalog.get(id)).id);
  }

  async loadedModels() {
    return this.pool.list().map((loaded) => this.describe(loaded.entry));
  }

  pull(...[request, ctx]: Parameters<InferenceBackend['pull']>) {
    return pullModel(request, ctx, { catalog: this.catalog, hubUrl: this.options.hubUrl, idleTimeoutMs: this.options.idleTimeoutMs });
  }

  async remove(id: string) {
    const entry = await this.catalog.get(id);
    await this.pool.unload(entry.id);
    await this.catalog.remove(entry.id);
  }

  async embeddingModels() {
    return (await this.models()).filter((model) => model.capabilities?.includes('embedding'));
  }

  async quants(repoId: string) {
    return (await this.catalog.list())
      .filter((entry) => entry.repo === repoId || entry.id === repoId)
      .map((entry) => ({ variant: entry.variant, size_bytes: entry.sizeBytes, downloaded: true }));
  }

  async facts(model: string) {
    const entry = await this.catalog.get(model).catch((error: unknown) => {
      if (error instanceof AppError && (error.code === 'not_found' || error.code === 'invalid_request')) return undefined;
      throw error;
    });
    return entry && factsOf(entry.id, entry.description, entry.sizeBytes);
  }

  /** Unloads every model: native memory is not the garbage collector's. */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** Loads the model if it is not (its progress going to this request as events), then runs `work` on it. */
  private async use<T>(model: string, keepAlive: KeepAlive | undefined, ctx: CallContext, work: (loaded: LoadedModel) => Promise<T>): Promise<T> {
    const entry = await this.catalog.get(model);
    return this.pool.use(entry, { keepAlive, signal: ctx.signal, progress: (update) => ctx.event('model_loading_progress', update) }, work);
  }

  /** What a request is held to: the loaded context (llama.cpp may round it up), else what loading will ask for. */
  private contextLength(entry: CatalogEntry): number {
    return this.pool.get(entry.id)?.contextLength ?? contextFor(entry, this.options.contextLength);
  }

  private describe(entry: CatalogEntry): Model {
    const d = entry.description;
    return {
      id: entry.id,
      name: d.name ?? entry.id,
      size_bytes: entry.sizeBytes,
      parameter_count: formatParameterCount(d.parameterCount),
      quantization: d.quantization,
      family: d.architecture,
      capabilities: d.capabilities,
      context_length: this.contextLength(entry),
      loaded: this.pool.get(entry.id) !== undefined,
    };
  }
}
