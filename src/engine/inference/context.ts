import type { ParamsStore } from '../params.ts';
import type { InferenceStore } from './settings.ts';
import type { Upstream } from './upstream.ts';

/** What the inference handlers share: the upstream, the saved settings and default model, the server params. */
export interface InferenceDeps {
  upstream: Upstream;
  store: InferenceStore;
  params: ParamsStore;
}
