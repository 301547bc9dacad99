import { z } from 'zod';

/**
 * Chat messages, tools and output formats as the OpenAI chat API spells them (Ollama's OpenAI endpoint, llama.cpp,
 * vLLM and LM Studio read the same), so an extension written against one of them sends the same JSON here.
 */

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
/** An image by URL; `data:image/png;base64,...` works everywhere, a web URL only where the upstream fetches it. */
const imageUrlPart = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
});
/** The request's binary attachment (a data-channel or WebSocket envelope), as an image: no base64 on the wire. */
const attachedImagePart = z.strictObject({ type: z.literal('image'), mime_type: z.string().regex(/^image\/[\w.+-]+$/) });
export const contentPart = z.discriminatedUnion('type', [textPart, imageUrlPart, attachedImagePart]);
export type ContentPart = z.infer<typeof contentPart>;

export const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  /** `arguments` is JSON text, as in OpenAI's API (a model may write JSON that does not parse). */
  function: z.strictObject({ name: z.string().min(1).max(256), arguments: z.string() }),
});
export type ToolCall = z.infer<typeof toolCall>;

export const message = z
  .strictObject({
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    /** Text, or parts (text and images); absent or `null` only on an assistant message that calls tools. */
    content: z.union([z.string(), z.array(contentPart).min(1).max(256)]).nullable().optional(),
    name: z.string().optional(),
    /** The calls an assistant message made. */
    tool_calls: z.array(toolCall).min(1).max(128).optional(),
    /** On a `tool` message: which call this is the result of. */
    tool_call_id: z.string().min(1).max(256).optional(),
  })
  .check((ctx) => {
    const { role, content, tool_calls: calls, tool_call_id: callId } = ctx.value;
    const issue = (path: string, message: string) => ctx.issues.push({ code: 'custom', input: ctx.value, path: [path], message });
    if (content == null && !(role === 'assistant' && calls)) issue('content', 'must be text or parts, unless an assistant message makes tool_calls');
    if (calls && role !== 'assistant') issue('tool_calls', 'only an assistant message makes tool calls');
    if (role === 'tool' && callId === undefined) issue('tool_call_id', 'a tool message names the call it answers');
  });
export type ChatMessage = z.infer<typeof message>;

/** A JSON Schema, as given: each backend checks what it can enforce. */
const jsonSchema = z.record(z.string(), z.unknown());

export const tool = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -, at most 64'),
    description: z.string().max(4096).optional(),
    parameters: jsonSchema.optional(),
    strict: z.boolean().optional(),
  }),
});
export type Tool = z.infer<typeof tool>;

/** `auto` (the model decides), `none`, `required` (some tool), or one tool by name. */
export const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) }),
]);
export type ToolChoice = z.infer<typeof toolChoice>;

export const responseFormat = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    json_schema: z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -, at most 64'),
      description: z.string().optional(),
      schema: jsonSchema,
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);
export type ResponseFormat = z.infer<typeof responseFormat>;

/**
 * How long the model stays loaded after this request, as Ollama takes it: seconds, or a duration (`"10m"`,
 * `"500ms"`); 0 unloads it when the request ends, a negative value keeps it until it is unloaded.
 */
export const keepAlive = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?(ms|s|m|h)?$/, 'seconds, or a duration like "5m", "30s", "500ms"')]);

/** What a streamed tool call adds in a `chunk` frame (OpenAI's delta shape): the first piece carries id and name. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/** A message's text: the string, or its text parts joined (images are not text). */
export function messageText(content: ChatMessage['content']): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}
