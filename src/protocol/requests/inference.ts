import { z } from 'zod';
import { request } from '../define.ts';
import { keepAlive, message, responseFormat, tool, toolCall, toolChoice } from './messages.ts';
import { finishReason, modelId, samplingParams, usage } from './shared.ts';

const generation = {
  response: z.string(),
  model: z.string(),
  /** Always from the embedded engine; from an upstream when it reports it (it is asked to). */
  usage: usage.optional(),
  finish_reason: finishReason,
};

export const inferenceRequests = {
  chat: request({
    group: 'inference',
    summary:
      'Chat completion over a list of messages (text, images, tool calls and results); streams token chunks when `stream` is true. ' +
      '`tools` and `tool_choice` let the model call functions (answered in `tool_calls`, streamed as chunk `tool_calls` too); ' +
      '`response_format` asks for JSON, or JSON that validates against a schema.',
    input: z.strictObject({
      model: modelId.optional(),
      messages: z.array(message).min(1),
      ...samplingParams,
      stream: z.boolean().optional(),
      tools: z.array(tool).min(1).max(128).optional(),
      tool_choice: toolChoice.optional(),
      response_format: responseFormat.optional(),
      keep_alive: keepAlive.optional(),
    }),
    output: z.object({ ...generation, tool_calls: z.array(toolCall).optional() }),
    response: 'chat_response',
    kind: 'mutation',
    streams: true,
    engine: 'inference',
  }),
  responses: request({
    group: 'inference',
    summary: 'OpenAI Responses-style generation from an input string or message list.',
    input: z.strictObject({
      model: modelId.optional(),
      input: z.union([z.string(), z.array(message).min(1)]),
      instructions: z.string().optional(),
      ...samplingParams,
      stream: z.boolean().optional(),
      keep_alive: keepAlive.optional(),
    }),
    output: z.object(generation),
    response: 'responses_response',
    kind: 'mutation',
    streams: true,
    engine: 'inference',
  }),
  generate: request({
    group: 'inference',
    summary: 'Raw text completion of a prompt.',
    input: z.strictObject({
      model: modelId.optional(),
      prompt: z.string(),
      ...samplingParams,
      stream: z.boolean().optional(),
      keep_alive: keepAlive.optional(),
    }),
    output: z.object(generation),
    response: 'generate_response',
    kind: 'mutation',
    streams: true,
    engine: 'inference',
  }),
  embeddings: request({
    group: 'inference',
    summary: 'Embedding vectors for one text or a batch.',
    input: z.strictObject({
      model: modelId.optional(),
      input: z.union([z.string(), z.array(z.string()).min(1).max(2048)]),
      keep_alive: keepAlive.optional(),
    }),
    output: z.object({ model: z.string(), embeddings: z.array(z.array(z.number())), usage: usage.optional() }),
    response: 'embeddings_response',
    kind: 'mutation',
    engine: 'inference',
  }),
  rerank: request({
    group: 'inference',
    summary: 'Orders documents by relevance to a query.',
    input: z.strictObject({
      model: modelId.optional(),
      query: z.string(),
      documents: z.array(z.string()).min(1).max(1024),
      top_n: z.number().int().positive().optional(),
    }),
    output: z.object({
      model: z.string(),
      method: z.enum(['rerank_endpoint', 'embeddings']),
      results: z.array(z.object({ index: z.number().int(), score: z.number(), document: z.string() })),
    }),
    response: 'rerank_response',
    kind: 'mutation',
    engine: 'inference',
  }),
};
