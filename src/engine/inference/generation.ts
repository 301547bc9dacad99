import { Buffer } from 'node:buffer';
import type { Handlers } from '../../protocol/handlers.ts';
import { AppError } from '../../errors.ts';
import type { ChatMessage, Tool, ToolChoice } from '../../protocol/requests/messages.ts';
import type { InferenceBackend, Sampling } from './backend.ts';
import type { InferenceDeps } from './context.ts';

const SAMPLING_KEYS = [
  'temperature',
  'top_p',
  'top_k',
  'max_tokens',
  'stop',
  'seed',
  'repeat_penalty',
  'presence_penalty',
  'frequency_penalty',
] as const satisfies readonly (keyof Sampling)[];

/**
 * The backend, the model, and each sampling parameter from the request, else the model's settings saved by the
 * caller's key, else the server's params.
 */
async function resolve(deps: InferenceDeps, params: { model?: string } & Sampling, owner: string, signal: AbortSignal) {
  // First the backend: without one, saying how to set one up helps more than anything below.
  const backend = await deps.backend();
  const model = params.model ?? (await deps.modelSettings.defaultModel(owner));
  if (!model) {
    const offered = await backend.models(signal).then(
      (models) => (models.length ? ` (${models.map((m) => m.id).slice(0, 8).join(', ')}${models.length > 8 ? ', ...' : ''})` : ''),
      () => '',
    );
    const none = offered ? '' : `. There are no models: ${backend.howToAddModels()}`;
    throw new AppError('invalid_request', `No model: name one in "model"${offered}, or choose a default with select_model${none}`, {
      details: { field: 'model' },
    });
  }
  const [server, saved] = await Promise.all([deps.params.get(), deps.modelSettings.settingsForModel(owner, model)]);
  const sampling: Record<string, unknown> = {};
  for (const key of SAMPLING_KEYS) {
    const value = params[key] ?? (saved as Sampling)[key] ?? (server as Sampling)[key];
    if (value !== undefined) sampling[key] = value;
  }
  return { backend, model, sampling: sampling as Sampling, systemPrompt: server.system_prompt };
}

/** `system_prompt` from `set_params` goes first when the conversation brings no system message of its own. */
function withSystemPrompt(messages: ChatMessage[], systemPrompt: string | undefined): ChatMessage[] {
  if (!systemPrompt || messages.some((message) => message.role === 'system')) return messages;
  return [{ role: 'system', content: systemPrompt }, ...messages];
}

/**
 * An `image` part stands for the request's binary attachment: it goes on as an `image_url` part with a data URL,
 * which every backend that reads images takes. A request carries one attachment, so one such part at most.
 */
function withAttachedImage(messages: ChatMessage[], attachment: Uint8Array | undefined): ChatMessage[] {
  const parts = messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((part) => part.type === 'image');
  if (parts.length === 0) return messages;
  if (parts.length > 1) {
    throw new AppError('invalid_request', `${parts.length} "image" parts, but a request carries one attachment: send the others as image_url parts`, {
      details: { field: 'messages' },
    });
  }
  if (!attachment) {
    throw new AppError('invalid_request', 'An "image" part stands for the request\'s binary attachment, and this request has none', {
      details: { field: 'messages' },
    });
  }
  const url = `data:${(parts[0] as { mime_type: string }).mime_type};base64,${Buffer.from(attachment).toString('base64')}`;
  return messages.map((m) =>
    Array.isArray(m.content)
      ? { ...m, content: m.content.map((part) => (part.type === 'image' ? { type: 'image_url' as const, image_url: { url } } : part)) }
      : m,
  );
}

/** A tool choice must name a tool the request gives. */
function checkToolChoice(tools: Tool[] | undefined, choice: ToolChoice | undefined): void {
  if (choice === undefined || choice === 'none' || choice === 'auto') return;
  const names = (tools ?? []).map((t) => t.function.name);
  const wanted = choice === 'required' ? undefined : choice.function.name;
  if (names.length === 0 || (wanted !== undefined && !names.includes(wanted))) {
    const which = wanted === undefined ? 'a tool' : `tool "${wanted}"`;
    throw new AppError('invalid_request', `tool_choice asks for ${which}, but tools has ${names.length ? names.join(', ') : 'none'}`, {
      details: { field: 'tool_choice' },
    });
  }
}

export function generationHandlers(deps: InferenceDeps) {
  return {
    chat: async (params, ctx) => {
      const { backend, model, sampling, systemPrompt } = await resolve(deps, params, ctx.owner, ctx.signal);
      checkToolChoice(params.tools, params.tool_choice);
      const messages = withSystemPrompt(withAttachedImage(params.messages, ctx.attachment), systemPrompt);
      return backend.chat(
        {
          model,
          messages,
          sampling,
          stream: Boolean(params.stream),
          tools: params.tools,
          toolChoice: params.tool_choice,
          responseFormat: params.response_format,
          keepAlive: params.keep_alive,
        },
        ctx,
      );
    },

    generate: async (params, ctx) => {
      const { backend, model, sampling } = await resolve(deps, params, ctx.owner, ctx.signal);
      return backend.complete({ model, prompt: params.prompt, sampling, stream: Boolean(params.stream), keepAlive: params.keep_alive }, ctx);
    },

    /** The backend's Responses API where it has one; otherwise the same request as a chat. */
    responses: async (params, ctx) => {
      const { backend, model, sampling, systemPrompt } = await resolve(deps, params, ctx.owner, ctx.signal);
      const instructions = params.instructions ?? systemPrompt;
      const input = typeof params.input === 'string' ? params.input : withAttachedImage(params.input, ctx.attachment);
      const call = { model, sampling, stream: Boolean(params.stream), keepAlive: params.keep_alive, input, instructions };
      return (await backend.respond(call, ctx)) ?? asChat(backend, call, ctx);
    },
  } satisfies Partial<Handlers>;
}

function asChat(
  backend: InferenceBackend,
  { input, instructions, ...call }: Parameters<InferenceBackend['respond']>[0],
  ctx: Parameters<InferenceBackend['chat']>[1],
) {
  const conversation: ChatMessage[] = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
  const messages: ChatMessage[] = instructions ? [{ role: 'system', content: instructions }, ...conversation] : conversation;
  return backend.chat({ ...call, messages }, ctx);
}
