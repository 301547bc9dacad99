import { AppError, type ErrorCode } from '../../../errors.ts';
import { log } from '../../../log.ts';
import { IdleTimer } from '../idle-timer.ts';
import { ndjson, parseJson, sseEvents, type SseEvent } from './streams.ts';

export interface UpstreamConfig {
  /** Root URL (a trailing `/v1` is accepted); unset: detect a local Ollama; `off`: none. */
  url?: string;
  apiKey?: string;
  /** How long the upstream may stay silent before its answer starts or between chunks. */
  idleTimeoutMs: number;
  /** Where to look for a local Ollama when no URL is set; Ollama's default port unless a test says otherwise. */
  detectUrl?: string;
}

interface Target {
  root: string;
  /** Ollama answers its native /api/* routes too (pull, delete, load, ps, show). */
  ollama: boolean;
}

export const OLLAMA_DEFAULT_URL = 'http://127.0.0.1:11434';
const PROBE_TIMEOUT_MS = 1_000;
/** After a failed detection, requests answer at once for this long instead of probing again. */
const REDETECT_AFTER_MS = 5_000;

export const HOW_TO_CONFIGURE =
  'Set TABAGENT_UPSTREAM_URL to an OpenAI-compatible server: http://127.0.0.1:11434 (Ollama), ' +
  'http://127.0.0.1:8081 (llama.cpp: llama-server --port 8081), http://127.0.0.1:8000 (vLLM), ' +
  'http://127.0.0.1:1234 (LM Studio) or https://api.openai.com (with TABAGENT_UPSTREAM_API_KEY); ' +
  'or start Ollama on its default port 11434, which is used when no URL is set.';

/** The status of an upstream HTTP error, in our codes: the client's fault, the upstream's, or the setup's. */
const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'backend_unavailable',
  403: 'backend_unavailable',
  404: 'not_found',
  408: 'timeout',
  413: 'payload_too_large',
  422: 'invalid_request',
  429: 'rate_limited',
  501: 'not_supported',
  504: 'timeout',
};

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  signal: AbortSignal;
}

/** The inference server behind us: where it is, what it is, and HTTP calls to it with errors in our codes. */
export class Upstream {
  private target: Promise<Target> | undefined;
  private failedAt = 0;

  constructor(private readonly config: UpstreamConfig) {}

  /** Resolves the upstream (configured, or a detected local Ollama). Throws `backend_unavailable` saying how to set one. */
  resolve(): Promise<Target> {
    if (this.config.url === 'off') {
      return Promise.reject(new AppError('backend_unavailable', `No inference upstream (TABAGENT_UPSTREAM_URL=off). ${HOW_TO_CONFIGURE}`));
    }
    if (!this.config.url && Date.now() - this.failedAt < REDETECT_AFTER_MS) {
      return Promise.reject(noUpstream());
    }
    this.target ??= this.locate().catch((error) => {
      this.target = undefined;
      this.failedAt = Date.now();
      throw error;
    });
    return this.target;
  }

  /** Calls `path` on the upstream; a non-2xx answer throws its error in our codes, with the upstream's message. */
  async request(path: string, { method = 'POST', body, signal }: RequestOptions): Promise<UpstreamResponse> {
    const { root } = await this.resolve();
    const idle = new IdleTimer(this.config.idleTimeoutMs);
    const combined = AbortSignal.any([signal, idle.signal]);
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream, application/x-ndjson' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.config.apiKey) headers.authorization = `Bearer ${this.config.apiKey}`;
    let response: Response;
    try {
      response = await fetch(root + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: combined,
      });
    } catch (error) {
      idle.stop();
      if (signal.aborted || idle.fired) throw translate(error, signal, idle);
      this.target = undefined; // it may have moved or restarted: look again next time
      throw new AppError('backend_unavailable', `Cannot reach the inference upstream at ${root}: ${describe(error)}. ${HOW_TO_CONFIGURE}`, {
        cause: error,
      });
    }
    const answer = new UpstreamResponse(response, signal, idle);
    if (!response.ok) throw await answer.failure(path);
    return answer;
  }

  private async locate(): Promise<Target> {
    if (this.config.url) {
      const root = this.config.url.replace(/\/+$/, '').replace(/\/v1$/, '');
      return { root, ollama: await isOllama(root) };
    }
    const local = this.config.detectUrl ?? OLLAMA_DEFAULT_URL;
    if (await isOllama(local)) {
      log.info(`using the local Ollama at ${local}`);
      return { root: local, ollama: true };
    }
    throw noUpstream();
  }
}

/** An upstream answer, read with the same idle timeout and cancellation as the request that asked for it. */
export class UpstreamResponse {
  constructor(
    readonly response: Response,
    private readonly signal: AbortSignal,
    private readonly idle: IdleTimer,
  ) {}

  async json<T>(): Promise<T> {
    const text = await this.text();
    return (text.trim() ? parseJson(text) : {}) as T;
  }

  async text(): Promise<string> {
    try {
      return await this.response.text();
    } catch (error) {
      throw translate(error, this.signal, this.idle);
    } finally {
      this.idle.stop();
    }
  }

  sse(): AsyncGenerator<SseEvent> {
    return sseEvents(this.chunks());
  }

  ndjson(): AsyncGenerator<unknown> {
    return ndjson(this.chunks());
  }

  /** The error a non-2xx answer stands for, with the upstream's own message (OpenAI's or Ollama's error shape). */
  async failure(path: string): Promise<AppError> {
    const { status } = this.response;
    const text = await this.text().catch(() => '');
    const message = upstreamMessage(text) ?? (this.response.statusText || `HTTP ${status}`);
    const code = CODE_BY_STATUS[status] ?? (status >= 500 ? 'upstream_error' : 'invalid_request');
    const hint = status === 401 || status === 403 ? ' Check TABAGENT_UPSTREAM_API_KEY.' : '';
    return new AppError(code, `The upstream answered ${status} to ${path}: ${message}${hint}`, {
      details: { upstream_status: status, upstream_message: message },
    });
  }

  private async *chunks(): AsyncGenerator<Uint8Array> {
    const body = this.response.body as AsyncIterable<Uint8Array> | null;
    if (!body) return;
    try {
      for await (const chunk of body) {
        this.idle.touch();
        yield chunk;
      }
    } catch (error) {
      throw translate(error, this.signal, this.idle);
    } finally {
      this.idle.stop();
    }
  }
}

/** A 404, 405 or 501 about the route itself, not about a model: the upstream lacks that endpoint. */
export function isMissingRoute(error: unknown): boolean {
  if (!(error instanceof AppError)) return false;
  const { upstream_status: status, upstream_message: message } = (error.details ?? {}) as {
    upstream_status?: number;
    upstream_message?: string;
  };
  return status === 405 || status === 501 || (status === 404 && !/model/i.test(message ?? ''));
}

/** What a failure while talking to the upstream means to our caller. */
function translate(error: unknown, signal: AbortSignal, idle: IdleTimer): unknown {
  if (signal.aborted) return signal.reason;
  if (idle.fired) return idle.signal.reason;
  if (error instanceof AppError) return error;
  return new AppError('upstream_error', `The upstream connection failed mid-answer: ${describe(error)}`, { cause: error });
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
}

/** OpenAI's `{ error: { message } }`, Ollama's `{ error: "..." }`, or plain text. */
function upstreamMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: string | { message?: string }; message?: string; detail?: unknown };
    if (typeof body.error === 'string') return body.error;
    if (body.error?.message) return body.error.message;
    if (typeof body.message === 'string') return body.message;
    if (body.detail !== undefined) return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 500) || undefined;
}

async function isOllama(root: string): Promise<boolean> {
  try {
    const response = await fetch(`${root}/api/version`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!response.ok) return false;
    const body = (await response.json()) as { version?: unknown };
    return typeof body.version === 'string';
  } catch {
    return false;
  }
}

function noUpstream(): AppError {
  return new AppError('backend_unavailable', `No inference upstream answers. ${HOW_TO_CONFIGURE}`);
}
