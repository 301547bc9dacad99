import type { InferenceSettings } from '../../protocol/requests/models.ts';
import type { Settings } from '../settings.ts';

/** The default model and the saved per model-and-variant inference settings, kept in the server's settings. */
export class InferenceStore {
  private writes = Promise.resolve();

  constructor(private readonly settings: Settings) {}

  defaultModel(): Promise<string | undefined> {
    return this.settings.getSetting<string>('default_model');
  }

  /** Sets the default model; returns the one it replaces. */
  setDefaultModel(model: string): Promise<string | undefined> {
    return this.serialized(async () => {
      const previous = await this.defaultModel();
      await this.settings.setSetting('default_model', model);
      return previous;
    });
  }

  settingsFor(repoId: string, variant: string): Promise<InferenceSettings | undefined> {
    return this.settings.getSetting<InferenceSettings>(key(repoId, variant));
  }

  saveSettings(repoId: string, variant: string, settings: InferenceSettings): Promise<void> {
    return this.settings.setSetting(key(repoId, variant), settings);
  }

  /** The settings that apply to a model id: saved for its repo and variant (`repo:variant`), else for the whole id. */
  async settingsForModel(model: string): Promise<InferenceSettings> {
    const { repoId, variant } = splitModelId(model);
    return (await this.settingsFor(repoId, variant)) ?? (await this.settingsFor(model, 'default')) ?? {};
  }

  private serialized<T>(run: () => Promise<T>): Promise<T> {
    const result = this.writes.then(run);
    this.writes = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

function key(repoId: string, variant: string): string {
  return `inference_settings:${repoId}|${variant}`;
}

/** `llama3.2:3b` is repo `llama3.2`, variant `3b`; a name without a tag is variant `default`. */
export function splitModelId(model: string): { repoId: string; variant: string } {
  const colon = model.lastIndexOf(':');
  return colon > 0 ? { repoId: model.slice(0, colon), variant: model.slice(colon + 1) } : { repoId: model, variant: 'default' };
}
