import os from 'node:os';
import { AppError } from '../../../errors.ts';
import { log } from '../../../log.ts';
import type { KeepAlive } from '../backend.ts';
import { estimateMemory, formatGB, USABLE_FRACTION } from '../memory.ts';
import type { CatalogEntry, ModelCatalog } from './catalog.ts';
import { factsOf } from './gguf.ts';
import { keepAliveMs, LoadedModel } from './loaded-model.ts';
import type { LlamaRuntime } from './runtime.ts';

export interface PoolOptions {
  /** Tokens per generation, capped at each model's trained context. */
  contextLength: number;
  /** Sequences (generations at once) per model. */
  parallel: number;
  /** How long an idle model stays, in seconds; a request's keep_alive overrides it. */
  ttlS: number;
  /** Memory all loaded models may take; unset: what the machine has free. */
  memoryBytes?: number;
  mmap: boolean;
}

/** The context a model runs with, and a request is held to: the configured length, within what it was trained for. */
export function contextFor(entry: CatalogEntry, configured: number): number {
  return Math.min(configured, entry.description.contextLength ?? Number.POSITIVE_INFINITY);
}

/** Progress of a load: the loader's fraction of weights read, and what it is doing. */
export type LoadProgress = (update: { model_id: string; progress: number; status: string }) => void;

interface LoadOptions {
  keepAlive?: KeepAlive;
  progress?: LoadProgress;
  /** Unload it first, to load it afresh. */
  force?: boolean;
  /** The caller stops waiting when it aborts; the load goes on for whoever else waits. */
  signal: AbortSignal;
}

interface Loading {
  done: Promise<LoadedModel>;
  listeners: Set<LoadProgress>;
}

/**
 * The models in memory. Loads run one at a time, so each sees the memory the others took; a model that does not fit
 * evicts the least recently used idle ones first. Idle models unload when their keep-alive runs out.
 */
export class ModelPool {
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Loading>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly runtime: LlamaRuntime,
    private readonly catalog: ModelCatalog,
    private readonly options: PoolOptions,
  ) {}

  get(id: string): LoadedModel | undefined {
    return this.loaded.get(id);
  }

  list(): LoadedModel[] {
    return [...this.loaded.values()];
  }

  /**
   * The model, loaded; `progress` hears the loader while this call waits for it (also when another request started
   * the load). `force` loads it afresh.
   */
  async load(entry: CatalogEntry, { keepAlive, progress, force, signal }: LoadOptions): Promise<LoadedModel> {
    if (keepAlive !== undefined) keepAliveMs(keepAlive); // a bad value is the request's error, before any work
    if (force && this.loaded.has(entry.id)) {
      progress?.({ model_id: entry.id, progress: 0, status: 'unloading' });
      await this.unload(entry.id);
    }
    let model = this.loaded.get(entry.id);
    if (!model) {
      let loading = this.loading.get(entry.id);
      if (!loading) {
        const listeners = new Set<LoadProgress>();
        const done = this.serialized(() => this.make(entry, (update) => listeners.forEach((listen) => listen(update))));
        loading = { done, listeners };
        this.loading.set(entry.id, loading);
        void done.finally(() => this.loading.delete(entry.id)).catch(() => undefined);
      }
      if (progress) loading.listeners.add(progress);
      try {
        model = await abortable(loading.done, signal); // the load goes on for whoever else waits
      } finally {
        if (progress) loading.listeners.delete(progress);
      }
    }
    model.keepFor(keepAlive);
    return model;
  }

  /** Runs `work` on the model, loaded; it cannot be unloaded from under `work` (which must start using it at once). */
  async use<T>(entry: CatalogEntry, options: LoadOptions, work: (model: LoadedModel) => Promise<T>): Promise<T> {
    for (;;) {
      const model = await this.load(entry, options);
      // An unload that began meanwhile took it out of the map: load it again rather than run on a model going away.
      if (this.loaded.get(entry.id) === model) return work(model);
    }
  }

  /** Unloads a model once nothing runs on it; false when it was not loaded. */
  async unload(id: string): Promise<boolean> {
    const model = this.loaded.get(id);
    if (!model) return false;
    this.loaded.delete(id); // no new work goes to it from now on
    await model.whenIdle();
    await model.dispose();
    log.info(`unloaded ${id}`);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.loaded.keys()].map((id) => this.unload(id)));
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async make(entry: CatalogEntry, progress: LoadProgress): Promise<LoadedModel> {
    if (this.closed) throw new AppError('shutting_down', 'The embedded engine is shutting down');
    const llama = await this.runtime.native();
    const contextLength = contextFor(entry, this.options.contextLength);
    const need = estimateMemory(factsOf(entry.id, entry.description, entry.sizeBytes), {
      contextLength: contextLength * this.options.parallel,
    }).estimated_bytes;
    await this.makeRoom(entry.id, need, progress);

    const started = performance.now();
    let reported = 0;
    progress({ model_id: entry.id, progress: 0, status: 'loading' });
    const weights = await llama
      .loadModel({
        modelPath: entry.path,
        useMmap: this.options.mmap,
        // llama.cpp reports the share of the weights read (not with mmap, where nothing is read up front); the
        // last step is the `loaded` event below, once the context is made too.
        onLoadProgress: (fraction) => {
          if (fraction >= 1 || fraction - reported < 0.01) return;
          reported = fraction;
          progress({ model_id: entry.id, progress: fraction, status: 'loading' });
        },
      })
      .catch((error: unknown) => {
        throw loadFailure(entry, need, error);
      });
    const context = await weights
      .createContext({ contextSize: contextLength, sequences: this.options.parallel, threads: this.runtime.threads })
      .catch(async (error: unknown) => {
        await weights.dispose();
        throw loadFailure(entry, need, error);
      });
    const model = new LoadedModel(entry, weights, context, need, Math.round(performance.now() - started), {
      defaultKeepMs: keepAliveMs(this.options.ttlS),
      threads: this.runtime.threads,
      onExpire: (expired) => {
        if (this.loaded.get(expired.id) === expired && expired.busy === 0) {
          log.info(`${expired.id} was idle past its keep-alive`);
          void this.unload(expired.id);
        }
      },
    });
    if (this.closed) {
      await model.dispose(); // closed while it loaded: nobody will unload it
      throw new AppError('shutting_down', 'The embedded engine is shutting down');
    }
    this.loaded.set(entry.id, model);
    model.started();
    progress({ model_id: entry.id, progress: 1, status: 'loaded' });
    log.info(`loaded ${entry.id} in ${model.loadTimeMs} ms (context ${contextLength} tokens, ≈${formatGB(need)})`);
    return model;
  }

  /** Unloads the least recently used idle models until `need` fits; says why when it cannot. */
  private async makeRoom(id: string, need: number, progress: LoadProgress): Promise<void> {
    const budget = this.options.memoryBytes;
    const used = () => this.list().reduce((sum, model) => sum + model.estimatedBytes, 0);
    const room = () => (budget !== undefined ? budget - used() : os.freemem() * USABLE_FRACTION);
    let freed = 0;
    while (need > room() + freed) {
      const [oldest] = this.list()
        .filter((model) => model.busy === 0)
        .sort((a, b) => a.lastUsed - b.lastUsed);
      if (!oldest) break;
      progress({ model_id: oldest.id, progress: 0, status: 'evicted' });
      log.info(`unloading ${oldest.id} to make room for ${id}`);
      // Without a budget, the memory it frees shows in os.freemem() only as the allocator returns it.
      if (budget === undefined) freed += oldest.estimatedBytes;
      await this.unload(oldest.id);
    }
    if (need <= room() + freed) return;
    const busy = this.list().filter((model) => model.busy > 0);
    const limit = budget !== undefined ? `TABAGENT_MODEL_MEMORY_BYTES (${formatGB(budget)})` : `the ${formatGB(os.freemem())} free`;
    if (busy.length > 0) {
      throw new AppError('server_busy', `${id} needs ≈${formatGB(need)}, beyond ${limit}, until ${busy.map((m) => m.id).join(', ')} finish: try again shortly`, {
        details: { model_id: id, needed_bytes: need },
      });
    }
    if (budget !== undefined) {
      throw new AppError('invalid_request', `${id} needs ≈${formatGB(need)}, more than ${limit}: choose a smaller quantization or context`, {
        details: { model_id: id, needed_bytes: need },
      });
    }
    log.warn(`${id} needs ≈${formatGB(need)}, more than ${limit}: trying anyway (the estimate is an upper bound)`);
  }
}

function loadFailure(entry: CatalogEntry, need: number, error: unknown): AppError {
  if (error instanceof AppError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  const memory = error instanceof Error && error.name === 'InsufficientMemoryError';
  return new AppError(memory ? 'server_busy' : 'invalid_request', `Cannot load ${entry.id} (${entry.path}, ≈${formatGB(need)}): ${reason}`, {
    cause: error,
    details: { model_id: entry.id },
  });
}

/** Waits for `promise` unless `signal` aborts first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
