import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../../../errors.ts';
import { log } from '../../../log.ts';
import { findQuantization, normalizeQuantization } from '../quantization.ts';
import { describeGguf, type GgufDescription } from './gguf.ts';
import type { LlamaRuntime } from './runtime.ts';

export const GGUF_SUFFIX = '.gguf';

export interface CatalogEntry {
  /** The file name without `.gguf`: what requests call the model. */
  id: string;
  path: string;
  sizeBytes: number;
  description: GgufDescription;
  /** The id without its quantization (`Llama-3.2-1B-Instruct` of `Llama-3.2-1B-Instruct-Q4_K_M`) and that quantization. */
  repo: string;
  variant: string;
}

/** A model id names a file in the models directory, nothing else: no separators, no `..`, no NUL. */
const MODEL_ID = /^(?!\.\.?$)[^/\\\0]{1,250}$/;

export function checkModelId(id: string): void {
  if (!MODEL_ID.test(id)) {
    throw new AppError('invalid_request', `"${id.slice(0, 80)}" is not a model id: an id is a GGUF file's name in the models directory, without .gguf`, {
      details: { field: 'model_id' },
    });
  }
}

/**
 * The GGUF files of the models directory, one model each. Headers are read once per file version (its size and
 * modification time) and kept: listing a directory of large models stays cheap.
 */
export class ModelCatalog {
  private readonly headers = new Map<string, { version: string; description: GgufDescription }>();

  constructor(
    readonly dir: string,
    private readonly runtime: LlamaRuntime,
  ) {}

  async list(): Promise<CatalogEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries = await Promise.all(
      names
        .filter((name) => name.endsWith(GGUF_SUFFIX) && MODEL_ID.test(name.slice(0, -GGUF_SUFFIX.length)))
        .sort()
        .map((name) =>
          this.entry(name.slice(0, -GGUF_SUFFIX.length)).catch((error: unknown) => {
            if (error instanceof AppError) throw error; // the engine itself cannot run: say that, not "no models"
            log.warn(`skipping ${path.join(this.dir, name)}: not a GGUF model this engine reads`, { cause: error });
            return undefined;
          }),
        ),
    );
    return entries.filter((entry): entry is CatalogEntry => entry !== undefined);
  }

  /**
   * A model by id, or by `repo:variant` (`Llama-3.2-1B-Instruct:Q4_K_M`, as `load_model` with a variant names it);
   * `not_found` says where the engine looked and what it has.
   */
  async get(id: string): Promise<CatalogEntry> {
    checkModelId(id);
    try {
      return await this.entry(id);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const all = await this.list();
    const colon = id.lastIndexOf(':');
    if (colon > 0) {
      const repo = id.slice(0, colon).toLowerCase();
      const variant = normalizeQuantization(id.slice(colon + 1));
      const match = all.find((entry) => entry.repo.toLowerCase() === repo && entry.variant === variant);
      if (match) return match;
    }
    const have = all.length ? `it has ${all.map((entry) => entry.id).join(', ')}` : 'it has none';
    throw new AppError(
      'not_found',
      `No model "${id}" in the models directory ${this.dir} (${have}): put ${id}${GGUF_SUFFIX} there (TABAGENT_MODELS_DIR) or pull_model it, or set TABAGENT_UPSTREAM_URL to use an inference server`,
      { details: { model_id: id } },
    );
  }

  pathOf(id: string): string {
    checkModelId(id);
    return path.join(this.dir, id + GGUF_SUFFIX);
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  async remove(id: string): Promise<void> {
    const entry = await this.get(id);
    await unlink(entry.path);
    this.headers.delete(entry.path);
  }

  private async entry(id: string): Promise<CatalogEntry> {
    const file = this.pathOf(id);
    const info = await stat(file);
    const version = `${info.size}:${info.mtimeMs}`;
    let header = this.headers.get(file);
    if (header?.version !== version) {
      const lib = await this.runtime.lib();
      const parsed = await lib.readGgufFileInfo(file, { readTensorInfo: true, sourceType: 'filesystem', logWarnings: false });
      header = { version, description: describeGguf(parsed, lib) };
      this.headers.set(file, header);
    }
    const { repo, variant } = splitVariant(id, header.description.quantization);
    return { id, path: file, sizeBytes: info.size, description: header.description, repo, variant };
  }
}

/** A file named for its quantization (`...-Q4_K_M`) is that variant of its repo; any other is its own repo. */
function splitVariant(id: string, quantization: string): { repo: string; variant: string } {
  const named = findQuantization(id);
  if (!named) return { repo: id, variant: quantization };
  const repo = (id.slice(0, named.start) + id.slice(named.end)).replace(/^[-._]+|[-._]+$/g, '');
  return { repo: repo || id, variant: named.name };
}
