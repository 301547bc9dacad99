import { AppError } from '../../errors.ts';
import { log } from '../../log.ts';
import type { BackendSource, InferenceBackend } from './backend.ts';
import type { Upstream } from './upstream/client.ts';
import { upstreamBackend } from './upstream/index.ts';

export interface BackendChoice {
  upstream: Upstream;
  /** `TABAGENT_UPSTREAM_URL`: a URL (that upstream, whatever happens), `off` (none), or unset (a local Ollama if one answers). */
  upstreamUrl: string | undefined;
  /** The engine in this process; without it, no upstream means `backend_unavailable`. */
  embedded?: InferenceBackend;
}

/**
 * The one place that decides what serves inference, per request: a configured upstream; with none configured, a
 * local Ollama while one answers, else the embedded engine; with `off`, the embedded engine. A configured upstream
 * that fails is its own error (`Cannot reach ...`): quietly answering from another model would hide it.
 */
export function chooseBackend({ upstream, upstreamUrl, embedded }: BackendChoice): BackendSource {
  const remote = upstreamBackend(upstream);
  let last: InferenceBackend | undefined;
  const chosen = (backend: InferenceBackend) => {
    if (last !== backend && upstreamUrl === undefined) log.info(`inference is served by the ${backend.name === 'embedded' ? 'embedded engine' : 'local Ollama'}`);
    last = backend;
    return backend;
  };
  return async () => {
    if (upstreamUrl === 'off' && embedded) return embedded;
    try {
      await upstream.resolve();
      return chosen(remote);
    } catch (error) {
      if (upstreamUrl === undefined && embedded && error instanceof AppError && error.code === 'backend_unavailable') return chosen(embedded);
      throw error;
    }
  };
}
