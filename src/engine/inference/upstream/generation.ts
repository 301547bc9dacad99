import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { ToolCall, ToolCallDelta } from '../../../protocol/requests/messages.ts';
import type { ChatCall, CompletionCall, FinishReason, Generation, InferenceBackend, ResponsesCall, Usage } from '../backend.ts';
import { isMissingRoute, type Upstream, type UpstreamResponse } from './client.ts';
import type { OllamaShow } from './ollama.ts';
import { malformed, parseJson } from './streams.ts';

const streamOptions = (stream: boolean) => (stream ? { stream: true, stream_options: { include_usage: true } } : { stream: false });

/** Chat, completions and the Responses API over an OpenAI-compatible upstream; tools and formats pass through. */
export function upstreamGeneration(upstream: Upstream): Pick<InferenceBackend, 'chat' | 'complete' | 'respond'> {
  const chat = async (call: ChatCall, ctx: CallContext): Promise<Generation> => {
    const { model, messages, sampling, stream, tools, toolChoice, responseFormat } = call;
    if (messages.some((m) => Array.isArray(m.content) && m.content.some((part) => part.type !== 'text'))) {
      await requireVision(upstream, model, ctx.signal);
    }
    const body = {
      model,
      messages,
      ...sampling,
      ...(tools && { tools }),
      ...(toolChoice && { tool_choice: toolChoice }),
      ...(responseFormat && { response_format: responseFormat }),
      ...streamOptions(stream),
    };
    const answer = await upstream.request('/v1/chat/completions', { body, signal: ctx.signal });
    return stream
      ? streamCompletion(answer, model, ctx, (choice) => choice.delta?.content)
      : fromCompletion(await answer.json(), model, (choice) => choice.message?.content);
  };

  return {
    chat,

    complete: async ({ model, prompt, sampling, stream }, ctx) => {
      const answer = await upstream.request('/v1/completions', { body: { model, prompt, ...sampling, ...streamOptions(stream) }, signal: ctx.signal });
      return stream
        ? streamCompletion(answer, model, ctx, (choice) => choice.text)
        : fromCompletion(await answer.json(), model, (choice) => choice.text);
    },

    respond: async ({ model, input, instructions, sampling, stream }: ResponsesCall, ctx) => {
      const { max_tokens: maxOutputTokens, temperature, top_p: topP } = sampling;
      const body = {
        model,
        input,
        ...(instructions === undefined ? {} : { instructions }),
        ...(maxOutputTokens === undefined ? {} : { max_output_tokens: maxOutputTokens }),
        ...(temperature === undefined ? {} : { temperature }),
        ...(topP === undefined ? {} : { top_p: topP }),
        stream,
      };
      let answer: UpstreamResponse;
      try {
        answer = await upstream.request('/v1/responses', { body, signal: ctx.signal });
      } catch (error) {
        if (isMissingRoute(error)) return undefined; // no Responses API here: the handler asks for a chat instead
        throw error;
      }
      return stream ? streamResponses(answer, model, ctx) : fromResponse(await answer.json(), model);
    },
  };
}

/**
 * Images go only to a model that reads them. Ollama says what each model can do; other servers are asked as they
 * are, and their own refusal (a 400) comes back as `invalid_request` with their message.
 */
async function requireVision(upstream: Upstream, model: string, signal: AbortSignal): Promise<void> {
  if (!(await upstream.resolve()).ollama) return;
  const show = await (await upstream.request('/api/show', { body: { model }, signal })).json<OllamaShow>();
  if (show.capabilities && !show.capabilities.includes('vision')) {
    throw new AppError('not_supported', `"${model}" cannot read images (Ollama lists it as: ${show.capabilities.join(', ')}); use a vision model`, {
      details: { model, capabilities: show.capabilities },
    });
  }
}

interface Choice {
  message?: { content?: string | null; tool_calls?: ToolCall[] };
  delta?: { content?: string | null; tool_calls?: ToolCallDelta[] };
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
  const calls = choice.message?.tool_calls;
  return {
    response: text(choice) ?? '',
    model: completion.model ?? model,
    ...usageOf(completion.usage),
    finish_reason: finishReason(choice.finish_reason),
    ...(calls?.length ? { tool_calls: calls.map(({ id, function: f }) => ({ id, type: 'function' as const, function: f })) } : {}),
  };
}

/** Reads OpenAI SSE chunks as they arrive, sends each text and tool-call delta on, and returns the whole answer. */
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
  const calls = new ToolCallAssembly();
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
    const toolDeltas = choice?.delta?.tool_calls;
    if (piece || toolDeltas?.length) {
      text += piece ?? '';
      if (toolDeltas?.length) calls.add(toolDeltas);
      ctx.chunk({ delta: piece ?? '', index: index++, ...(toolDeltas?.length ? { tool_calls: toolDeltas } : {}) });
    }
    finish = choice?.finish_reason ?? finish;
  }
  if (!done && !finish) throw malformed('the stream ended before [DONE]');
  const toolCalls = calls.result();
  return {
    response: text,
    model,
    ...usageOf(usage),
    finish_reason: finishReason(finish),
    ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
  };
}

/** Joins streamed tool-call deltas by their index: the first carries id and name, the rest more arguments. */
export class ToolCallAssembly {
  private readonly calls = new Map<number, ToolCall>();

  add(deltas: ToolCallDelta[]): void {
    for (const { index, id, function: f } of deltas) {
      const call = this.calls.get(index) ?? { id: id ?? `call_${index}`, type: 'function' as const, function: { name: '', arguments: '' } };
      if (id) call.id = id;
      if (f?.name) call.function.name = f.name;
      call.function.arguments += f?.arguments ?? '';
      this.calls.set(index, call);
    }
  }

  result(): ToolCall[] {
    return [...this.calls.entries()].sort(([a], [b]) => a - b).map(([, call]) => call);
  }
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
  if (reason === 'length') return 'length';
  return reason === 'tool_calls' || reason === 'function_call' ? 'tool_calls' : 'stop';
}

/** Chat usage (`prompt_tokens`...) or Responses usage (`input_tokens`...), as ours; absent when the upstream gave none. */
export function usageOf(usage: Record<string, number> | null | undefined): { usage?: Usage } {
  if (!usage) return {};
  const prompt = usage.prompt_tokens ?? usage.input_tokens ?? 0;
  const completion = usage.completion_tokens ?? usage.output_tokens ?? 0;
  return { usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: usage.total_tokens ?? prompt + completion } };
}
