import type { ParamsStore } from '../params.ts';
import type { BackendSource } from './backend.ts';
import type { ModelSettings } from './model-settings.ts';

/** What the inference handlers share: the backend of the moment, the saved settings and default model, the server params. */
export interface InferenceDeps {
  backend: BackendSource;
  modelSettings: ModelSettings;
  params: ParamsStore;
}
