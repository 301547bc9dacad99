import type { LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp';
import { AppError } from '../../../errors.ts';
import type { KeepAlive } from '../backend.ts';
import type { CatalogEntry } from './catalog.ts';

/** Ollama's `keep_alive` in milliseconds: a number is seconds, a string may say its unit; negative: forever. */
export function keepAliveMs(value: KeepAlive): number {
  const match = /^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim());
  if (!match) throw new AppError('invalid_request', `keep_alive "${value}" is not seconds or a duration like "5m"`, { details: { field: 'keep_alive' } });
  const unit: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  const amount = Number(match[1]) * unit[match[2] ?? 's'];
  return amount < 0 ? Number.POSITIVE_INFINITY : amount;
}

/**
 * A model in memory: its weights, one context with a sequence per parallel generation, an embedding context made
 * when first asked, and when it may be unloaded. A sequence is lent to one generation at a time; the others wait.
 */
export class LoadedModel {
  lastUsed = Date.now();
  /** Generations and embeddings running on it: it is never unloaded under them. */
  busy = 0;
  private readonly free: LlamaContextSequence[];
  private readonly waiting: { take: (sequence: LlamaContextSequence) => void }[] = [];
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  private embeddingQueue: Promise<unknown> = Promise.resolve();
  private keepMs: number;
  private expiry: ReturnType<typeof setTimeout> | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly entry: CatalogEntry,
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly estimatedBytes: number,
    readonly loadTimeMs: number,
    private readonly options: { defaultKeepMs: number; threads: number; onExpire: (model: LoadedModel) => void },
  ) {
    this.free = Array.from({ length: context.totalSequences }, () => context.getSequence());
    this.keepMs = options.defaultKeepMs;
  }

  get id(): string {
    return this.entry.id;
  }

  /** Tokens one generation may hold: its prompt and what it writes. */
  get contextLength(): number {
    return this.context.contextSize;
  }

  /** Runs `work` with a sequence of its own, waiting for one if all are lent; the model stays loaded meanwhile. */
  async withSequence<T>(signal: AbortSignal, work: (sequence: LlamaContextSequence) => Promise<T>): Promise<T> {
    return this.holding(async () => {
      const sequence = await this.acquire(signal);
      try {
        return await work(sequence);
      } finally {
        const next = this.waiting.shift();
        if (next) next.take(sequence);
        else this.free.push(sequence);
      }
    });
  }

  /** Embeds texts one at a time on the model's embedding context (made on first use, with the same context length). */
  embed(texts: string[], signal: AbortSignal): Promise<{ vectors: number[][]; tokens: number }> {
    return this.holding(async () => {
      this.embedding ??= this.model.createEmbeddingContext({ contextSize: this.contextLength, threads: this.options.threads });
      const context = await this.embedding;
      const run = this.embeddingQueue.then(async () => {
        const vectors: number[][] = [];
        let tokens = 0;
        for (const text of texts) {
          signal.throwIfAborted();
          const input = this.model.tokenize(text);
          if (input.length > this.contextLength) {
            throw new AppError('context_length_exceeded', `A text of ${input.length} tokens is longer than ${this.id}'s context of ${this.contextLength}`, {
              details: { prompt_tokens: input.length, context_length: this.contextLength },
            });
          }
          tokens += input.length;
          vectors.push([...(await context.getEmbeddingFor(input)).vector]);
        }
        return { vectors, tokens };
      });
      this.embeddingQueue = run.catch(() => undefined);
      return run;
    });
  }

  /** The latest request's `keep_alive` sets how long the model stays once idle, as in Ollama. */
  keepFor(keepAlive: KeepAlive | undefined): void {
    if (keepAlive === undefined) return;
    this.keepMs = keepAliveMs(keepAlive);
    if (this.busy === 0) this.scheduleExpiry();
  }

  /** Resolves once nothing runs on it (at once when idle); the caller stops sending it work first. */
  whenIdle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async dispose(): Promise<void> {
    clearTimeout(this.expiry);
    await (await this.embedding?.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }

  private async holding<T>(work: () => Promise<T>): Promise<T> {
    this.busy++;
    clearTimeout(this.expiry);
    try {
      return await work();
    } finally {
      this.busy--;
      this.lastUsed = Date.now();
      if (this.busy === 0) this.becameIdle();
    }
  }

  private becameIdle(): void {
    for (const wake of this.idleWaiters.splice(0)) wake();
    this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    clearTimeout(this.expiry);
    if (this.keepMs === Number.POSITIVE_INFINITY) return;
    this.expiry = setTimeout(() => this.options.onExpire(this), this.keepMs);
    this.expiry.unref?.(); // an idle model never keeps the process alive
  }

  private acquire(signal: AbortSignal): Promise<LlamaContextSequence> {
    signal.throwIfAborted();
    const sequence = this.free.pop();
    if (sequence) return Promise.resolve(sequence);
    return new Promise((resolve, reject) => {
      const waiter = {
        take: (taken: LlamaContextSequence) => {
          signal.removeEventListener('abort', onAbort);
          resolve(taken);
        },
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Called by the pool once it has made the model: starts its idle clock. */
  started(): void {
    this.scheduleExpiry();
  }
}
