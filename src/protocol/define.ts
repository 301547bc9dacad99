import { z } from 'zod';

/** What serves a request type: the engines behind the registry. */
export type Engine = 'system' | 'inference' | 'knowledge';

export type Group =
  | 'inference'
  | 'models'
  | 'model_settings'
  | 'history'
  | 'documents'
  | 'rag'
  | 'control'
  | 'parameters'
  | 'system';

/**
 * One request type, declared once. Everything else (TypeScript types, tRPC procedures, data-channel and
 * native-messaging dispatch, docs) is derived from these fields.
 */
export interface RequestSpec<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  group: Group;
  summary: string;
  /** Parameters, without `action` and `request_id`. Strict: an unknown field is an error naming it. */
  input: I;
  /** The final answer's fields, without `request_id` and `type`. */
  output: O;
  /** The `type` tag of the final answer. */
  response: string;
  /** tRPC procedure kind: reads are queries, everything with an effect is a mutation. */
  kind: 'query' | 'mutation';
  /** Sends `chunk` frames before its final answer when asked to stream. */
  streams?: boolean;
  /**
   * Changes what every caller shares (the server params, the models in memory or on disk): with API keys on, only
   * an admin key may call it; others get `forbidden`.
   */
  adminOnly?: boolean;
  /** Still answered while the server shuts down (others get `shutting_down`), so callers can watch it stop. */
  answersDuringShutdown?: boolean;
  engine: Engine;
}

/** Keeps the literal types of a spec (its `response` tag above all) for the derived types. */
export function request<const I extends z.ZodType, const O extends z.ZodType, const S extends RequestSpec<I, O>>(
  spec: S & RequestSpec<I, O>,
): S {
  return spec;
}

/** Input of a type that takes no parameters: absent or `{}`. */
export const noParams = () => z.strictObject({}).default({});
