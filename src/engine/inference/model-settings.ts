import type { InferenceSettings } from '../../protocol/requests/models.ts';
import type { Settings } from '../settings.ts';

/** Each owner's default model and saved per model-and-variant inference settings, kept in the server's settings. */
export class ModelSettings {
  private writes = Promise.resolve();

  constructor(private readonly settings: Settings) {}

  defaultModel(owner: string): Promise<string | undefined> {
    return this.settings.getSetting<string>(owner, 'default_model');
  }

  /** Sets the owner's default model; returns the one it replaces. */
  setDefaultModel(owner: string, model: string): Promise<string | undefined> {
    return this.serialized(async () => {
      const previous = await this.defaultModel(owner);
      await this.settings.setSetting(owner, 'default_model', model);
      return previous;
    });
  }

  settingsFor(owner: string, repoId: string, variant: string): Promise<InferenceSettings | undefined> {
    return this.settings.getSetting<InferenceSettings>(owner, key(repoId, variant));
  }

  saveSettings(owner: string, repoId: string, variant: string, settings: InferenceSettings): Promise<void> {
    return this.settings.setSetting(owner, key(repoId, variant), settings);
  }

  /** The settings that apply to a model id: saved for its repo and variant (`repo:variant`), else for the whole id. */
  async settingsForModel(owner: string, model: string): Promise<InferenceSettings> {
    const { repoId, variant } = splitModelId(model);
    return (await this.settingsFor(owner, repoId, variant)) ?? (await this.settingsFor(owner, model, 'default')) ?? {};
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
