import { z } from 'zod';

/** Sampling parameters shared by the generation types, `set_params` and the inference settings. */
export const samplingParams = {
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  max_tokens: z.number().int().positive().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).optional(),
  seed: z.number().int().optional(),
  repeat_penalty: z.number().min(0).optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
};

export const usage = z.object({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
});

/** `tool_calls`: the model stopped to call tools (`tool_calls` in the answer). */
export const finishReason = z.enum(['stop', 'length', 'tool_calls', 'cancelled', 'error']);

export const modelId = z.string().min(1).max(512);

/** Free-form metadata filters for search: `{ field: value }` equality on document metadata. */
export const metadataFilters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();

export const successOutput = z.object({ success: z.literal(true), message: z.string().optional() });
