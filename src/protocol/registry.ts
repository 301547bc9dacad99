import type { z } from 'zod';
import type { RequestSpec } from './define.ts';
import { inferenceRequests } from './requests/inference.ts';
import { knowledgeRequests } from './requests/knowledge.ts';
import { modelRequests } from './requests/models.ts';
import { controlRequests, systemRequests } from './requests/system.ts';

/**
 * The single list of request types. Adding one is one edit in `protocol/requests/`; the types below,
 * the tRPC `rpc.*` procedures, the data-channel dispatch and docs/REQUEST_TYPES.md follow from it.
 */
export const registry = {
  ...inferenceRequests,
  ...modelRequests,
  ...knowledgeRequests,
  ...controlRequests,
  ...systemRequests,
} satisfies Record<string, RequestSpec>;

export type Registry = typeof registry;
export type Action = keyof Registry;

/** What a caller sends (defaults not yet applied). */
export type RequestInput<A extends Action> = z.input<Registry[A]['input']>;
/** What a handler receives (validated, defaults applied). */
export type RequestParams<A extends Action> = z.output<Registry[A]['input']>;
/** The final answer's `type` tag. */
export type ResponseType<A extends Action> = Registry[A]['response'];
/** The final answer's fields, without `request_id`. */
export type ResponseOf<A extends Action> = { type: ResponseType<A> } & z.output<Registry[A]['output']>;
/** What a handler returns: the final answer without its tag. */
export type HandlerResult<A extends Action> = z.input<Registry[A]['output']>;

export const actions = Object.keys(registry) as Action[];

export function isAction(name: unknown): name is Action {
  return typeof name === 'string' && Object.hasOwn(registry, name);
}

/** The seed's `request_type` names are PascalCase aliases: `Chat` -> `chat`, `ListModels` -> `list_models`. */
const byPascalCase = new Map<string, Action>(
  actions.map((action) => [action.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join(''), action]),
);

export function actionFromPascalCase(name: string): Action | undefined {
  return byPascalCase.get(name);
}

/** A request type's declaration, widened: for code that reads the optional fields of any type. */
export function specOf(action: Action): RequestSpec {
  return registry[action];
}

/** Request types that can stream `chunk` frames. */
export type StreamingAction = { [A in Action]: Registry[A] extends { streams: true } ? A : never }[Action];
