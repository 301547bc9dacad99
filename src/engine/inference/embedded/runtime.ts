/**
 * node-llama-cpp, loaded when the embedded engine is first used and not before: a server that never runs a GGUF
 * model never loads the native library, and one whose runtime cannot load it (a platform without a prebuilt
 * binary, Deno without FFI permission) still serves everything else, upstreams included.
 */
import type * as NodeLlamaCpp from 'node-llama-cpp';
import type { Llama } from 'node-llama-cpp';
import { AppError } from '../../../errors.ts';
import { log } from '../../../log.ts';
import { cpu, runtime } from '../../machine.ts';
import { HOW_TO_CONFIGURE } from '../upstream/client.ts';

export type LlamaModule = typeof NodeLlamaCpp;
export type GpuChoice = 'auto' | 'off' | 'cuda' | 'vulkan' | 'metal';

export interface RuntimeOptions {
  gpu: GpuChoice;
  /** CPU threads per generation; default `defaultThreads()`. */
  threads?: number;
  /** How the module is imported; tests give one that fails. */
  importModule?: () => Promise<LlamaModule>;
}

/**
 * Half the cores, at least one. llama.cpp's threads spin while they wait for one another, so on cores it shares
 * with the server, its peer process and the clients, more threads are slower: the test model writes ~1,000 tokens/s
 * on one thread of this 2-core machine and ~20 on two.
 */
export function defaultThreads(): number {
  return Math.max(1, Math.floor(cpu().cores / 2));
}

/**
 * One llama.cpp per process and configuration: its native logger and backend are process-wide, and a second
 * instance beside the first would log past our logger (as tests that start several servers in one process did).
 */
const instances = new Map<string, Promise<Llama>>();

export class LlamaRuntime {
  readonly threads: number;
  private module: Promise<LlamaModule> | undefined;
  private injected: Promise<Llama> | undefined;

  constructor(private readonly options: RuntimeOptions) {
    this.threads = options.threads ?? defaultThreads();
  }

  /** The module itself, for what needs no native code: reading GGUF headers. */
  lib(): Promise<LlamaModule> {
    this.module ??= (this.options.importModule ?? (() => import('node-llama-cpp')))().catch((error: unknown) => {
      throw unavailable('node-llama-cpp could not be imported', error);
    });
    return this.module;
  }

  /** llama.cpp, from its prebuilt binaries only: nothing is downloaded or compiled at run time. */
  native(): Promise<Llama> {
    if (this.options.importModule) return (this.injected ??= this.create()); // a test's module: never shared
    const key = `${this.options.gpu}:${this.threads}`;
    let llama = instances.get(key);
    if (!llama) instances.set(key, (llama = this.create()));
    return llama;
  }

  private create(): Promise<Llama> {
    return this.lib().then(async (lib) => {
      const started = performance.now();
      try {
        const llama = await lib.getLlama({
          gpu: this.options.gpu === 'off' ? false : this.options.gpu,
          build: 'never',
          progressLogs: false,
          maxThreads: this.threads,
          logLevel: lib.LlamaLogLevel.warn,
          // llama.cpp warns of much that does not matter to a user (odd token ids in a model's vocabulary).
          logger: (level, message) => (level === 'error' || level === 'fatal' ? log.warn : log.debug)(`llama.cpp ${level}: ${message.trim()}`),
        });
        log.info(`the embedded engine runs llama.cpp ${llama.buildType} on ${llama.gpu || 'the CPU'}, ${this.threads} thread(s), ready in ${Math.round(performance.now() - started)} ms`);
        return llama;
      } catch (error) {
        const gpu = this.options.gpu;
        const why = gpu === 'auto' || gpu === 'off' ? 'no prebuilt llama.cpp binary loads here' : `no ${gpu} build of node-llama-cpp is installed or it does not load (npm ci leaves the GPU builds out: see docs/INFERENCE.md, "GPU builds"; or set TABAGENT_LLAMA_GPU=auto)`;
        throw unavailable(why, error);
      }
    });
  }
}

/** Said once, clearly, on every request the embedded engine would serve; the cause stays in the logs. */
function unavailable(what: string, cause: unknown): AppError {
  const deno = runtime().name === 'deno' ? ' Under Deno, run with --allow-ffi (deno task dev does).' : '';
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  log.warn(`the embedded engine cannot run: ${what}`, { cause });
  return new AppError(
    'backend_unavailable',
    `The embedded engine (node-llama-cpp) cannot run here: ${what} (${reason}).${deno} Serve inference from an upstream instead. ${HOW_TO_CONFIGURE}`,
    { cause, details: { engine: 'embedded' } },
  );
}
