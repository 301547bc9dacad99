import { AppError } from '../errors.ts';
import type { Engine } from '../protocol/define.ts';
import type { EngineHandlers, Handler, Handlers } from '../protocol/handlers.ts';
import { actions, registry, type Action } from '../protocol/registry.ts';
import { controlHandlers } from './control.ts';
import { paramsHandlers, type ParamsStore } from './params.ts';
import { systemHandlers, type ServerView } from './system.ts';

export type { ServerView } from './system.ts';
export { paramsStore, type ParamsStore } from './params.ts';
export { memorySettings, type Settings } from './settings.ts';

type AttachableEngine = Exclude<Engine, 'system'>;

/** What a request type needs when its engine is not attached, said so the user knows what to do. */
const MISSING_ENGINE: Record<AttachableEngine, string> = {
  inference: 'the inference engine (an OpenAI-compatible or Ollama upstream, or GGUF models)',
  knowledge: 'the knowledge engine (history and RAG store)',
};

/** An engine not attached: each of its request types answers a typed `backend_unavailable`. */
function unavailable<E extends AttachableEngine>(engine: E): EngineHandlers<E> {
  const handlers: Partial<Record<Action, Handler<Action>>> = {};
  for (const action of actions.filter((a) => registry[a].engine === engine)) {
    handlers[action] = () => {
      throw new AppError('backend_unavailable', `"${action}" is served by ${MISSING_ENGINE[engine]}, which this server has not attached`, {
        details: { action, engine },
      });
    };
  }
  // Every action the registry gives this engine, by construction of the loop above.
  return handlers as EngineHandlers<E>;
}

export interface EngineOptions {
  server: ServerView;
  params: ParamsStore;
  /** The engines attached to this server; one left out answers `backend_unavailable`. */
  inference?: EngineHandlers<'inference'>;
  knowledge?: EngineHandlers<'knowledge'>;
  /** Handlers that replace the engines' own for some request types (a library user's, or a test's). */
  overrides?: Partial<Handlers>;
}

/** Every request type gets a handler: the system's own, an attached engine's, or a typed `backend_unavailable`. */
export function createHandlers({ server, params, inference, knowledge, overrides }: EngineOptions): Handlers {
  const system: EngineHandlers<'system'> = { ...controlHandlers, ...paramsHandlers(params), ...systemHandlers(server) };
  return {
    ...system,
    ...(inference ?? unavailable('inference')),
    ...(knowledge ?? unavailable('knowledge')),
    ...overrides,
  };
}
