import type { CallContext } from '../../../protocol/handlers.ts';
import type { CompletionCall, Generation } from '../backend.ts';
import type { LoadedModel } from './loaded-model.ts';
import type { LlamaModule } from './runtime.ts';
import { finishOf, samplingOptions, Stream, tokenBudget } from './sampling.ts';

/** A raw text completion of a prompt on a loaded model (`generate`): no chat template, no tools. */
export function runCompletion(lib: LlamaModule, loaded: LoadedModel, call: CompletionCall, ctx: CallContext): Promise<Generation> {
  const stream = new Stream(ctx, call.stream);
  return loaded.withSequence(ctx.signal, async (sequence) => {
    const completion = new lib.LlamaCompletion({ contextSequence: sequence });
    try {
      const promptTokens = loaded.model.tokenize(call.prompt).length;
      const result = await completion.generateCompletionWithMeta(call.prompt, {
        ...samplingOptions(call.sampling),
        maxTokens: tokenBudget(loaded, promptTokens, call.sampling.max_tokens),
        signal: ctx.signal,
        stopOnAbortSignal: true,
        disableContextShift: true,
        onToken: stream.tokens,
        onTextChunk: stream.text,
      }).finally(() => stream.flush());
      return { response: result.response, model: loaded.id, usage: stream.usage(promptTokens), finish_reason: finishOf(result.metadata.stopReason) };
    } finally {
      completion.dispose({ disposeSequence: false });
    }
  });
}
