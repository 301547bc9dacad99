import type { CallContext, Handlers } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import type { InferenceDeps } from './context.ts';
import { malformed, parseJson } from './streams.ts';
import { isMissingRoute, type UpstreamResponse } from './upstream.ts';

type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}
export interface Generation {
  response: string;
  model: string;
  usage?: Usage;
  finish_reason: FinishReason;
}

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
] as const;
type Sampling = Partial<Record<(typeof SAMPLING_KEYS)[number], unknown>>;

/**
 * The model, and each sampling parameter from the request, else the model's settings saved by the caller's key,
 * else the server's params.
 */
async function resolve(deps: InferenceDeps, params: { model?: string } & Sampling, owner: string) {
  await deps.upstream.resolve(); // without an upstream, saying how to set one up helps more than anything below
  const model = params.model ?? (await deps.store.defaultModel(owner));
  if (!model) {
    throw new AppError('invalid_request', 'No model: name one in "model", or choose a default with select_model', {
      details: { field: 'model' },
    });
  }
  const [server, saved] = await Promise.all([deps.params.get(), deps.store.settingsForModel(owner, model)]);
  const sampling: Sampling = {};
  for (const key of SAMPLING_KEYS) {
    const value = params[key] ?? (saved as Sampling)[key] ?? (server as Sampling)[key];
    if (value !== undefined) sampling[key] = value;
  }
  return { model, sampling, systemPrompt: server.system_prompt };
}

const streamOptions = (stream: boolean | undefined) =>
  stream ? { stream: true, stream_options: { include_usage: true } } : { stream: false };

export function generationHandlers(deps: InferenceDeps): Pick<Handlers, 'chat' | 'generate' | 'responses'> {
  const { upstream } = deps;

  async function chatCompletion(model: string, messages: unknown[], sampling: Sampling, stream: boolean | undefined, ctx: CallContext) {
    const body = { model, messages, ...sampling, ...streamOptions(stream) };
    const answer = await upstream.request('/v1/chat/completions', { body, signal: ctx.signal });
    return stream
      ? streamCompletion(answer, model, ctx, (choice) => choice.delta?.content)
      : fromCompletion(await answer.json(), model, (choice) => choice.message?.content);
  }

  return {
    chat: async (params, ctx) => {
      const { model, sampling, systemPrompt } = await resolve(deps, params, ctx.owner);
      const hasSystem = params.messages.some((message) => message.role === 'system');
      const messages = systemPrompt && !hasSystem ? [{ role: 'system', content: systemPrompt }, ...params.messages] : params.messages;
      return chatCompletion(model, messages, sampling, params.stream, ctx);
    },

    generate: async (params, ctx) => {
      const { model, sampling } = await resolve(deps, params, ctx.owner);
      const body = { model, prompt: params.prompt, ...sampling, ...streamOptions(params.stream) };
      const answer = await upstream.request('/v1/completions', { body, signal: ctx.signal });
      return params.stream
        ? streamCompletion(answer, model, ctx, (choice) => choice.text)
        : fromCompletion(await answer.json(), model, (choice) => choice.text);
    },

    /** OpenAI's Responses API where the upstream has it; otherwise the same request as a chat completion. */
    responses: async (params, ctx) => {
      const { model, sampling, systemPrompt } = await resolve(deps, params, ctx.owner);
      const instructions = params.instructions ?? systemPrompt;
      const { max_tokens: maxOutputTokens, temperature, top_p: topP } = sampling;
      const body = {
        model,
        input: params.input,
        ...(instructions === undefined ? {} : { instructions }),
        ...(maxOutputTokens === undefined ? {} : { max_output_tokens: maxOutputTokens }),
        ...(temperature === undefined ? {} : { temperature }),
        ...(topP === undefined ? {} : { top_p: topP }),
        stream: Boolean(params.stream),
      };
      let answer: UpstreamResponse;
      try {
        answer = await upstream.request('/v1/responses', { body, signal: ctx.signal });
      } catch (error) {
        if (!isMissingRoute(error)) throw error;
        const input = typeof params.input === 'string' ? [{ role: 'user', content: params.input }] : params.input;
        const messages = instructions ? [{ role: 'system', content: instructions }, ...input] : input;
        return chatCompletion(model, messages, sampling, params.stream, ctx);
      }
      return params.stream ? streamResponses(answer, model, ctx) : fromResponse(await answer.json(), model);
    },
  };
}

interface Choice {
  message?: { content?: string | null };
  delta?: { content?: string | null };
  text?: string;
  finish_reason?: string | null;
}
interface Completion {
  model?: string;
  choices?: Choice[];
  usage?: Record<string, number> | null;
  error?: { message?: string } | string;
}

function fromCompletion(completion: Completion, model: string, text: (choice: Choice) => string | null | undefined): Generation {
  const choice = completion.choices?.[0];
  if (!choice) throw malformed('an answer without choices');
  return {
    response: text(choice) ?? '',
    model: completion.model ?? model,
    ...usageOf(completion.usage),
    finish_reason: finishReason(choice.finish_reason),
  };
}

/** Reads OpenAI SSE chunks as they arrive, sends each text delta on, and returns the whole answer. */
async function streamCompletion(
  answer: UpstreamResponse,
  model: string,
  ctx: CallContext,
  delta: (choice: Choice) => string | null | undefined,
): Promise<Generation> {
  let text = '';
  let index = 0;
  let finish: string | null | undefined;
  let usage: Completion['usage'];
  let done = false;
  for await (const event of answer.sse()) {
    if (event.data === '[DONE]') {
      done = true;
      break;
    }
    const chunk = parseJson(event.data) as Completion;
    if (chunk.error) throw streamError(chunk.error);
    model = chunk.model ?? model;
    usage = chunk.usage ?? usage;
    const choice = chunk.choices?.[0];
    const piece = choice && delta(choice);
    if (piece) {
      text += piece;
      ctx.chunk({ delta: piece, index: index++ });
    }
    finish = choice?.finish_reason ?? finish;
  }
  if (!done && !finish) throw malformed('the stream ended before [DONE]');
  return { response: text, model, ...usageOf(usage), finish_reason: finishReason(finish) };
}

interface ResponseObject {
  model?: string;
  status?: string;
  output?: { type?: string; content?: { type?: string; text?: string }[] }[];
  usage?: Record<string, number> | null;
  error?: { message?: string } | null;
}

function fromResponse(response: ResponseObject, model: string): Generation {
  const text = (response.output ?? [])
    .flatMap((item) => item.content ?? [])
    .filter((part) => part.type === 'output_text')
    .map((part) => part.text ?? '')
    .join('');
  return {
    response: text,
    model: response.model ?? model,
    ...usageOf(response.usage),
    finish_reason: response.status === 'incomplete' ? 'length' : 'stop',
  };
}

/** Reads a Responses API event stream: text deltas until `response.completed` (or `.incomplete`). */
async function streamResponses(answer: UpstreamResponse, model: string, ctx: CallContext): Promise<Generation> {
  let index = 0;
  for await (const event of answer.sse()) {
    const data = parseJson(event.data) as { type?: string; delta?: string; response?: ResponseObject; message?: string };
    switch (data.type ?? event.event) {
      case 'response.output_text.delta':
        if (data.delta) ctx.chunk({ delta: data.delta, index: index++ });
        break;
      case 'response.completed':
      case 'response.incomplete':
        if (!data.response) throw malformed(`${data.type} without its response`);
        return fromResponse(data.response, model);
      case 'response.failed':
        throw streamError(data.response?.error ?? 'the response failed');
      case 'error':
        throw streamError(data.message ?? 'error event');
    }
  }
  throw malformed('the stream ended before response.completed');
}

function streamError(error: { message?: string } | string): AppError {
  const message = typeof error === 'string' ? error : (error.message ?? JSON.stringify(error));
  return new AppError('upstream_error', `The upstream failed mid-stream: ${message}`, { details: { upstream_message: message } });
}

function finishReason(reason: string | null | undefined): FinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

/** Chat usage (`prompt_tokens`...) or Responses usage (`input_tokens`...), as ours; absent when the upstream gave none. */
function usageOf(usage: Record<string, number> | null | undefined): { usage?: Usage } {
  if (!usage) return {};
  const prompt = usage.prompt_tokens ?? usage.input_tokens ?? 0;
  const completion = usage.completion_tokens ?? usage.output_tokens ?? 0;
  return { usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: usage.total_tokens ?? prompt + completion } };
}
