import { randomUUID } from 'node:crypto';
import type { ChatHistoryItem, ChatModelFunctions, ChatWrapper, GbnfJsonSchema, Llama, LlamaContextSequence, LlamaGrammar, LlamaModel } from 'node-llama-cpp';
import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { ToolCall, ToolChoice } from '../../../protocol/requests/messages.ts';
import type { ChatCall, Generation } from '../backend.ts';
import { forcedCallInstruction, forcedCallSchema, refuseImages, toFunctions, toHistory } from './history.ts';
import { enforceableSchema } from './json-schema.ts';
import type { LoadedModel } from './loaded-model.ts';
import type { LlamaModule } from './runtime.ts';
import { finishOf, noContextShift, samplingOptions, Stream, tokenBudget } from './sampling.ts';

/** A chat on a loaded model: tools through node-llama-cpp's function calling, JSON output through a grammar. */
export async function runChat(lib: LlamaModule, llama: Llama, loaded: LoadedModel, call: ChatCall, ctx: CallContext): Promise<Generation> {
  refuseImages(call.messages);
  let history = toHistory(call.messages);
  const plan = await planOutput(llama, call);
  if (plan.instruction) history = withInstruction(history, plan.instruction);
  const stream = new Stream(ctx, call.stream);
  const forcedName = plan.forced?.name;
  let arguments_ = '';

  return loaded.withSequence(ctx.signal, async (sequence) => {
    const chat = new lib.LlamaChat({ contextSequence: sequence, chatWrapper: wrapperOf(lib, loaded.model, sequence) });
    try {
      const promptTokens = countPrompt(chat.chatWrapper, loaded.model, history, plan.functions);
      const options = {
        ...samplingOptions(call.sampling),
        maxTokens: tokenBudget(loaded, promptTokens, call.sampling.max_tokens),
        signal: ctx.signal,
        stopOnAbortSignal: true,
        contextShift: noContextShift,
        onToken: stream.tokens,
        ...(plan.grammar || plan.forced ? { grammar: plan.grammar ?? plan.forced!.grammar } : {}),
        ...(plan.functions
          ? {
              functions: plan.functions,
              onFunctionCallParamsChunk: ({ callIndex, functionName, paramsChunk }) =>
                stream.toolCall({ index: callIndex, function: { name: functionName, arguments: paramsChunk } }),
            }
          : {}),
        // A forced call's arguments stream as a tool call's, not as text; when any tool will do, the name comes last.
        onTextChunk: plan.forced
          ? (piece) => {
              if (forcedName === undefined || !piece) return;
              stream.toolCall(arguments_ ? { index: 0, function: { arguments: piece } } : { index: 0, id: plan.forced!.id, type: 'function', function: { name: forcedName, arguments: piece } });
              arguments_ += piece;
            }
          : stream.text,
      } as Parameters<typeof chat.generateResponse>[1];
      const result = await chat.generateResponse(history, options).finally(() => stream.flush());
      const usage = stream.usage(promptTokens);
      const finish = finishOf(result.metadata.stopReason);
      if (plan.forced) {
        const toolCall = forcedCall(plan.forced, result.response);
        if (forcedName === undefined && toolCall) stream.toolCall({ index: 0, id: toolCall.id, type: 'function', function: toolCall.function });
        return { response: '', model: loaded.id, usage, finish_reason: toolCall && finish === 'stop' ? 'tool_calls' : finish, ...(toolCall ? { tool_calls: [toolCall] } : {}) };
      }
      const toolCalls = (result.functionCalls ?? []).map((c, i): ToolCall => ({
        id: `call_${randomUUID().slice(0, 8)}_${i}`,
        type: 'function',
        function: { name: c.functionName, arguments: JSON.stringify(c.params ?? {}) },
      }));
      return { response: result.response, model: loaded.id, usage, finish_reason: finish, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) };
    } finally {
      chat.dispose({ disposeSequence: false });
    }
  });
}

interface OutputPlan {
  grammar?: LlamaGrammar;
  functions?: ChatModelFunctions;
  /** `tool_choice` says a tool must be called: its arguments are written under that tool's schema. */
  forced?: { id: string; name?: string; grammar: LlamaGrammar & { parse(text: string): unknown } };
  instruction?: string;
}

/** How the answer is constrained: a JSON grammar, the tools as functions, or a forced tool call. */
async function planOutput(llama: Llama, { tools: given, toolChoice, responseFormat }: ChatCall): Promise<OutputPlan> {
  const tools = toolChoice === 'none' ? undefined : given?.map((tool, i) => {
    const { parameters } = tool.function;
    return parameters ? { ...tool, function: { ...tool.function, parameters: enforceableSchema(parameters, `tools.${i}.function.parameters`) } } : tool;
  });
  const format = responseFormat?.type === 'text' ? undefined : responseFormat;
  if (tools && format) throw both();
  if (tools && isForced(toolChoice)) {
    const name = typeof toolChoice === 'object' ? toolChoice.function.name : tools.length === 1 ? tools[0].function.name : undefined;
    const grammar = await grammarFor(llama, forcedCallSchema(tools, name));
    return { forced: { id: `call_${randomUUID().slice(0, 8)}_0`, name, grammar }, instruction: forcedCallInstruction(tools, name) };
  }
  if (tools) return { functions: toFunctions(tools) };
  if (format?.type === 'json_schema') return { grammar: await grammarFor(llama, enforceableSchema(format.json_schema.schema, 'response_format.json_schema.schema')) };
  if (format?.type === 'json_object') return { grammar: await llama.getGrammarFor('json') };
  return {};
}

function isForced(choice: ToolChoice | undefined): boolean {
  return choice === 'required' || typeof choice === 'object';
}

function both(): AppError {
  return new AppError('not_supported', 'The embedded engine constrains an answer one way at a time: tools, or response_format, not both', {
    details: { field: 'response_format' },
  });
}

/** A grammar that makes the model write JSON valid under `schema` (checked by enforceableSchema). */
async function grammarFor(llama: Llama, schema: GbnfJsonSchema) {
  try {
    return await llama.createGrammarForJsonSchema(schema as Parameters<Llama['createGrammarForJsonSchema']>[0]);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AppError('invalid_request', `The embedded engine cannot enforce this JSON schema: ${reason}`, { details: { field: 'response_format' } });
  }
}

/** The forced call the model wrote; none when it was cut off (max_tokens, a stop) before its JSON was whole. */
function forcedCall(forced: NonNullable<OutputPlan['forced']>, text: string): ToolCall | undefined {
  let value: unknown;
  try {
    value = forced.grammar.parse(text);
  } catch {
    return undefined;
  }
  // With one tool named, the JSON is its arguments; otherwise `{ name, arguments }` (forcedCallSchema).
  const { name, arguments: args } = forced.name !== undefined ? { name: forced.name, arguments: value } : (value as { name: string; arguments: unknown });
  return { id: forced.id, type: 'function', function: { name, arguments: JSON.stringify(args) } };
}

function withInstruction(history: ChatHistoryItem[], instruction: string): ChatHistoryItem[] {
  const [first, ...rest] = history;
  if (first?.type === 'system') return [{ type: 'system', text: `${String(first.text)}\n\n${instruction}` }, ...rest];
  return [{ type: 'system', text: instruction }, ...history];
}

/** The prompt's length as the model will see it: the history in the chat template, tools documented. */
function countPrompt(wrapper: ChatWrapper, model: LlamaModel, history: ChatHistoryItem[], functions: ChatModelFunctions | undefined): number {
  const { contextText } = wrapper.generateContextState({ chatHistory: history, availableFunctions: functions, documentFunctionParams: true });
  return contextText.tokenize(model.tokenizer).length;
}

/** The chat template is resolved once per model (from its metadata, or its name); a Jinja template takes a moment. */
const wrappers = new WeakMap<LlamaModel, ChatWrapper>();
function wrapperOf(lib: LlamaModule, model: LlamaModel, sequence: LlamaContextSequence): ChatWrapper {
  let wrapper = wrappers.get(model);
  if (!wrapper) {
    const probe = new lib.LlamaChat({ contextSequence: sequence, chatWrapper: 'auto' });
    wrapper = probe.chatWrapper;
    probe.dispose({ disposeSequence: false });
    wrappers.set(model, wrapper);
  }
  return wrapper;
}
