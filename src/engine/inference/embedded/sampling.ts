/** What chat and completion share on the embedded engine: sampling options, the token budget, how a run ended. */
import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { ToolCallDelta } from '../../../protocol/requests/messages.ts';
import type { FinishReason, Sampling, Usage } from '../backend.ts';

/**
 * Sampling when neither the request, the model's saved settings nor the server params say: llama.cpp's own
 * server defaults (node-llama-cpp's are greedy, which loops on small models).
 */
const DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 };

export function samplingOptions(sampling: Sampling) {
  const { repeat_penalty: repeat, presence_penalty: presence, frequency_penalty: frequency } = sampling;
  const stops = sampling.stop === undefined ? [] : [sampling.stop].flat().filter((stop) => stop !== '');
  return {
    temperature: sampling.temperature ?? DEFAULTS.temperature,
    topK: sampling.top_k ?? DEFAULTS.topK,
    topP: sampling.top_p ?? DEFAULTS.topP,
    minP: DEFAULTS.minP,
    ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
    ...((repeat ?? presence ?? frequency) === undefined
      ? {}
      : { repeatPenalty: { penalty: repeat ?? 1, presencePenalty: presence ?? 0, frequencyPenalty: frequency ?? 0 } }),
    ...(stops.length ? { customStopTriggers: stops } : {}),
  };
}

/**
 * How many tokens the answer may take: what the request asks, within what the context has left after the prompt.
 * A prompt that leaves no room is an error, never cut to fit.
 */
export function tokenBudget(model: { id: string; contextLength: number }, promptTokens: number, maxTokens: number | undefined): number {
  const room = model.contextLength - promptTokens;
  if (room <= 0) {
    throw new AppError(
      'context_length_exceeded',
      `The prompt is ${promptTokens} tokens; ${model.id} runs with a context of ${model.contextLength} (TABAGENT_CONTEXT_LENGTH, up to what the model was trained for): shorten the conversation`,
      { details: { prompt_tokens: promptTokens, context_length: model.contextLength } },
    );
  }
  return Math.min(room, maxTokens ?? room);
}

type StopReason = 'eogToken' | 'stopGenerationTrigger' | 'customStopTrigger' | 'functionCalls' | 'maxTokens' | 'abort';

export function finishOf(stopReason: StopReason): FinishReason {
  if (stopReason === 'maxTokens') return 'length';
  if (stopReason === 'functionCalls') return 'tool_calls';
  return stopReason === 'abort' ? 'cancelled' : 'stop';
}

/**
 * Text written within this long of the last chunk waits and goes out with the next one. A chunk frame per token
 * cost the data channel 9% of the tokens/s at the test model's ~1,000 tokens/s (bench:llm); a reader sees no
 * difference at 100 chunks a second, and a model slower than that still sends every token as it comes.
 */
export const CHUNK_INTERVAL_MS = 10;

/** A run's chunks and token count: text goes out as it is written, gathered into one chunk per interval. */
export class Stream {
  private index = 0;
  private pending = '';
  private lastSent = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  completionTokens = 0;

  constructor(
    private readonly ctx: CallContext,
    private readonly streaming: boolean,
  ) {}

  readonly tokens = (tokens: readonly unknown[]) => {
    this.completionTokens += tokens.length;
  };

  readonly text = (delta: string) => {
    if (!this.streaming || !delta) return;
    this.pending += delta;
    const wait = this.lastSent + CHUNK_INTERVAL_MS - performance.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  };

  toolCall(delta: ToolCallDelta): void {
    if (!this.streaming) return;
    this.flush();
    this.ctx.chunk({ delta: '', index: this.index++, tool_calls: [delta] });
  }

  /** Sends what waits; called once more when the run ends, before its final answer. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return;
    this.ctx.chunk({ delta: this.pending, index: this.index++ });
    this.pending = '';
    this.lastSent = performance.now();
  }

  usage(promptTokens: number): Usage {
    return { prompt_tokens: promptTokens, completion_tokens: this.completionTokens, total_tokens: promptTokens + this.completionTokens };
  }
}

/** A guard behind the token budget: node-llama-cpp would otherwise drop old messages to make room, silently. */
export const noContextShift = {
  strategy: (): never => {
    throw new AppError('context_length_exceeded', 'The conversation no longer fits the context: shorten it');
  },
};
