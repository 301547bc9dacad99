import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { InferenceSettings } from '../../protocol/requests/models.ts';

interface FileShape {
  default_model?: string;
  settings: Record<string, InferenceSettings>;
}

/**
 * A small JSON file in the data directory: the default model and the saved inference settings. Writes are
 * serialized and atomic (write a temporary file, then rename), so a crash never leaves half a file.
 */
export class InferenceStore {
  private cache: Promise<FileShape> | undefined;
  private writes = Promise.resolve();

  constructor(private readonly file: string) {}

  async defaultModel(): Promise<string | undefined> {
    return (await this.read()).default_model;
  }

  setDefaultModel(model: string): Promise<string | undefined> {
    return this.update((data) => {
      const previous = data.default_model;
      data.default_model = model;
      return previous;
    });
  }

  async settings(repoId: string, variant: string): Promise<InferenceSettings | undefined> {
    return (await this.read()).settings[key(repoId, variant)];
  }

  saveSettings(repoId: string, variant: string, settings: InferenceSettings): Promise<void> {
    return this.update((data) => {
      data.settings[key(repoId, variant)] = settings;
    });
  }

  /** The settings that apply to a model id: saved for its repo and variant (`repo:variant`), else for the whole id. */
  async settingsForModel(model: string): Promise<InferenceSettings> {
    const { repoId, variant } = splitModelId(model);
    return (await this.settings(repoId, variant)) ?? (await this.settings(model, 'default')) ?? {};
  }

  private read(): Promise<FileShape> {
    this.cache ??= readFile(this.file, 'utf8').then(
      (text) => ({ settings: {}, ...(JSON.parse(text) as Partial<FileShape>) }),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return { settings: {} };
        throw error;
      },
    );
    return this.cache;
  }

  private update<T>(change: (data: FileShape) => T): Promise<T> {
    const run = this.writes.then(async () => {
      const data = await this.read();
      const result = change(data);
      await mkdir(path.dirname(this.file), { recursive: true });
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(data, null, 2));
      await rename(temporary, this.file);
      return result;
    });
    this.writes = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function key(repoId: string, variant: string): string {
  return `${repoId}|${variant}`;
}

/** `llama3.2:3b` is repo `llama3.2`, variant `3b`; a name without a tag is variant `default`. */
export function splitModelId(model: string): { repoId: string; variant: string } {
  const colon = model.lastIndexOf(':');
  return colon > 0 ? { repoId: model.slice(0, colon), variant: model.slice(colon + 1) } : { repoId: model, variant: 'default' };
}
