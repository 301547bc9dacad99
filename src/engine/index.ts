import { AppError } from '../errors.ts';
import type { Handler, Handlers } from '../dispatch.ts';
import type { Engine } from '../protocol/define.ts';
import { actions, registry, type Action } from '../registry.ts';
import { controlHandlers } from './control.ts';
import { paramsHandlers, type ParamsStore } from './params.ts';
import { systemHandlers, type ServerView } from './system.ts';

export type { ServerView } from './system.ts';
export { paramsStore, type ParamsStore } from './params.ts';
export { memorySettings, type Settings } from './settings.ts';

/** What a request type needs when its engine is not attached, said so the user knows what to do. */
const MISSING_ENGINE: Record<Exclude<Engine, 'system'>, string> = {
  inference: 'the inference engine (an OpenAI-compatible or Ollama upstream)',
  knowledge: 'the knowledge engine (history and RAG store)',
};

function unavailable(action: Action, engine: Exclude<Engine, 'system'>): Handler<Action> {
  return () => {
    throw new AppError('backend_unavailable', `"${action}" is served by ${MISSING_ENGINE[engine]}, which this server has not attached`, {
      details: { action, engine },
    });
  };
}

export interface EngineOptions {
  server: ServerView;
  params: ParamsStore;
  /** Engines attached to this server: their handlers replace the `backend_unavailable` answers. */
  engines?: Partial<Handlers>;
}

/** Every request type gets a handler: the system's own, an attached engine's, or a typed `backend_unavailable`. */
export function createHandlers({ server, params, engines = {} }: EngineOptions): Handlers {
  const handlers = {} as Record<Action, Handler<Action>>;
  for (const action of actions) {
    const { engine } = registry[action];
    if (engine !== 'system') handlers[action] = unavailable(action, engine);
  }
  return Object.assign(handlers, controlHandlers, paramsHandlers(params), systemHandlers(server), engines) as Handlers;
}
