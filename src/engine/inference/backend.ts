/**
 * The seam between the inference handlers and what runs the models: an upstream server (`upstream/`) or the
 * engine embedded in this process (`embedded/`). Handlers resolve a request's defaults, check it, and call one
 * backend; each backend says in its own terms how to run it. Neither handler nor backend asks which one it has.
 */
import type { CallContext } from '../../protocol/handlers.ts';
import type { ChatMessage, ResponseFormat, Tool, ToolCall, ToolChoice } from '../../protocol/requests/messages.ts';
import type { Model } from '../../protocol/requests/models.ts';
import type { ModelFacts } from './memory.ts';

export type { Model } from '../../protocol/requests/models.ts';

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'cancelled' | 'error';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Generation {
  response: string;
  model: string;
  usage?: Usage;
  finish_reason: FinishReason;
  tool_calls?: ToolCall[];
}

/** Sampling parameters, resolved: the request's, else the model's saved settings, else the server params. */
export interface Sampling {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  stop?: string | string[];
  seed?: number;
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
}

/** Ollama's `keep_alive`: seconds, or a duration string; the backend that keeps models decides what it means. */
export type KeepAlive = number | string;

interface GenerationCall {
  model: string;
  sampling: Sampling;
  stream: boolean;
  keepAlive?: KeepAlive;
}

/** A chat, its messages ready to send: attached images are `image_url` parts with data URLs by now. */
export interface ChatCall extends GenerationCall {
  messages: ChatMessage[];
  tools?: Tool[];
  toolChoice?: ToolChoice;
  responseFormat?: ResponseFormat;
}

export interface CompletionCall extends GenerationCall {
  prompt: string;
}

export interface ResponsesCall extends GenerationCall {
  input: string | ChatMessage[];
  instructions?: string;
}

export interface Embeddings {
  model: string;
  embeddings: number[][];
  usage?: Usage;
}

export interface Ranked {
  model: string;
  results: { index: number; score: number; document: string }[];
}

export interface Loaded {
  model_id: string;
  loaded: boolean;
  load_time_ms?: number;
  context_length?: number;
}

export interface PullRequest {
  model: string;
  quantization?: string;
  digest?: string;
}

export interface InferenceBackend {
  /** Said in errors and logs: `upstream` or `embedded`. */
  readonly name: 'upstream' | 'embedded';

  chat(call: ChatCall, ctx: CallContext): Promise<Generation>;
  complete(call: CompletionCall, ctx: CallContext): Promise<Generation>;
  /** Through a Responses API where the backend has one; `undefined`: none, the handler runs it as a chat. */
  respond(call: ResponsesCall, ctx: CallContext): Promise<Generation | undefined>;
  embed(model: string, input: string[], signal: AbortSignal, keepAlive?: KeepAlive): Promise<Embeddings>;
  /** A rerank endpoint's ranking where there is one; `undefined`: none, the handler scores with embeddings. */
  rerank(model: string | undefined, query: string, documents: string[], topN: number, signal: AbortSignal): Promise<Ranked | undefined>;

  /** What to do when it has no models at all, for the error that says so. */
  howToAddModels(): string;
  /** Every model it offers, with what it knows of each. */
  models(signal: AbortSignal): Promise<Model[]>;
  modelInfo(id: string, signal: AbortSignal): Promise<{ model: Model; details?: Record<string, unknown> }>;
  load(id: string, options: { forceReload?: boolean; keepAlive?: KeepAlive }, ctx: CallContext): Promise<Loaded>;
  unload(id: string, signal: AbortSignal): Promise<void>;
  loadedModels(signal: AbortSignal): Promise<Model[]>;
  pull(request: PullRequest, ctx: CallContext): Promise<{ model: string; status: string }>;
  remove(id: string, signal: AbortSignal): Promise<void>;
  embeddingModels(signal: AbortSignal): Promise<Model[]>;
  /** The variants of a repository it has (quantizations). */
  quants(repoId: string, signal: AbortSignal): Promise<{ variant: string; size_bytes?: number; downloaded?: boolean }[]>;
  /** What it knows of a model for memory estimates; `undefined` when it does not have that model. */
  facts(model: string, signal: AbortSignal): Promise<ModelFacts | undefined>;
}

/** Picks the backend for each request: configured once, but what answers may change (a local Ollama starting). */
export type BackendSource = () => Promise<InferenceBackend>;
