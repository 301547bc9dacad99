import { z } from 'zod';
import { noParams, request } from '../define.ts';
import { keepAlive } from './messages.ts';
import { modelId, samplingParams, successOutput } from './shared.ts';

const model = z.object({
  id: z.string(),
  name: z.string().optional(),
  size_bytes: z.number().optional(),
  parameter_count: z.string().optional(),
  quantization: z.string().optional(),
  family: z.string().optional(),
  capabilities: z.array(z.string()).optional(),
  /** Tokens the model was trained to see at once; a request longer than the context it runs with is an error. */
  context_length: z.number().int().optional(),
  loaded: z.boolean().optional(),
});
export type Model = z.infer<typeof model>;

const modelList = z.object({ models: z.array(model) });

/** Per model-and-variant defaults, applied to that model's requests. */
const inferenceSettings = z.strictObject({ ...samplingParams, context_length: z.number().int().positive().optional() });
export type InferenceSettings = z.infer<typeof inferenceSettings>;

export const modelRequests = {
  list_models: request({
    group: 'models',
    summary: 'Models the inference backend offers, optionally filtered by a substring of the id.',
    input: z.strictObject({ filter: z.string().max(256).optional() }).default({}),
    output: modelList,
    response: 'models_list',
    kind: 'query',
    engine: 'inference',
  }),
  model_info: request({
    group: 'models',
    summary: 'Details of one model: size, parameters, quantization, capabilities.',
    input: z.strictObject({ model_id: modelId }),
    output: z.object({ model, details: z.record(z.string(), z.unknown()).optional() }),
    response: 'model_info',
    kind: 'query',
    engine: 'inference',
  }),
  load_model: request({
    group: 'models',
    summary: 'Loads a model into memory; pushes `model_loading_progress` events while it works.',
    input: z.strictObject({
      model_id: modelId,
      variant: z.string().optional(),
      force_reload: z.boolean().optional(),
      keep_alive: keepAlive.optional(),
    }),
    output: z.object({
      model_id: z.string(),
      loaded: z.boolean(),
      load_time_ms: z.number().optional(),
      /** The context it runs with, in tokens (the embedded engine). */
      context_length: z.number().int().optional(),
    }),
    response: 'model_loaded',
    kind: 'mutation',
    adminOnly: true,
    engine: 'inference',
  }),
  unload_model: request({
    group: 'models',
    summary: 'Frees a loaded model.',
    input: z.strictObject({ model_id: modelId }),
    output: z.object({ model_id: z.string(), unloaded: z.boolean() }),
    response: 'model_unloaded',
    kind: 'mutation',
    adminOnly: true,
    engine: 'inference',
  }),
  get_loaded_models: request({
    group: 'models',
    summary: 'Models currently in memory.',
    input: noParams(),
    output: modelList,
    response: 'loaded_models',
    kind: 'query',
    engine: 'inference',
  }),
  select_model: request({
    group: 'models',
    summary: 'Sets the default model for requests that name none.',
    input: z.strictObject({ model_id: modelId }),
    output: z.object({ model_id: z.string(), previous: z.string().nullable() }),
    response: 'model_selected',
    kind: 'mutation',
    engine: 'inference',
  }),
  pull_model: request({
    group: 'models',
    summary:
      'Downloads a model; pushes `model_pull_progress` events while it works. Through Ollama: its model name. ' +
      'Embedded engine: a GGUF file\'s URL, or `owner/repo/file.gguf` on the model hub (or `owner/repo` with `quantization`); ' +
      'resumed where a cancelled pull stopped, checked against `digest` (sha256) when given.',
    input: z.strictObject({
      model: modelId,
      quantization: z.string().optional(),
      digest: z
        .string()
        .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, 'a sha256 digest: 64 hex digits, optionally after "sha256:"')
        .optional(),
    }),
    output: z.object({ model: z.string(), status: z.string() }),
    response: 'model_pulled',
    kind: 'mutation',
    adminOnly: true,
    engine: 'inference',
  }),
  delete_model: request({
    group: 'models',
    summary: 'Deletes a downloaded model.',
    input: z.strictObject({ model_id: modelId }),
    output: successOutput,
    response: 'model_deleted',
    kind: 'mutation',
    adminOnly: true,
    engine: 'inference',
  }),
  get_embedding_models: request({
    group: 'models',
    summary: 'Models that produce embeddings.',
    input: noParams(),
    output: modelList,
    response: 'embedding_models',
    kind: 'query',
    engine: 'inference',
  }),
  get_recipes: request({
    group: 'models',
    summary: 'Curated presets: a model and settings for a task.',
    input: noParams(),
    output: z.object({
      recipes: z.array(
        z.object({ id: z.string(), name: z.string(), description: z.string(), model: z.string(), settings: z.record(z.string(), z.unknown()) }),
      ),
    }),
    response: 'recipes',
    kind: 'query',
    engine: 'inference',
  }),
  get_model_quants: request({
    group: 'model_settings',
    summary: 'Quantized variants available for a model repository.',
    input: z.strictObject({ repo_id: modelId }),
    output: z.object({
      repo_id: z.string(),
      quants: z.array(z.object({ variant: z.string(), size_bytes: z.number().optional(), downloaded: z.boolean().optional() })),
    }),
    response: 'model_quants',
    kind: 'query',
    engine: 'inference',
  }),
  get_inference_settings: request({
    group: 'model_settings',
    summary: 'Saved inference settings of a model variant.',
    input: z.strictObject({ repo_id: modelId, variant: z.string().min(1) }),
    output: z.object({ repo_id: z.string(), variant: z.string(), settings: inferenceSettings }),
    response: 'inference_settings',
    kind: 'query',
    engine: 'inference',
  }),
  save_inference_settings: request({
    group: 'model_settings',
    summary: 'Saves inference settings of a model variant; they become that model\'s defaults.',
    input: z.strictObject({ repo_id: modelId, variant: z.string().min(1), settings: inferenceSettings }),
    output: successOutput,
    response: 'inference_settings_saved',
    kind: 'mutation',
    engine: 'inference',
  }),
};
