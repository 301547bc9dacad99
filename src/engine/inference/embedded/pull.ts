/**
 * `pull_model` for the embedded engine: a GGUF file from a URL or a model hub into the models directory. The bytes
 * go to `<id>.gguf.partial` and become `<id>.gguf` only once whole (and matching `digest`, when given), so a model
 * is never half there; a cancelled or broken pull leaves the partial file, and the next pull goes on from it.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CallContext } from '../../../protocol/handlers.ts';
import { AppError } from '../../../errors.ts';
import type { PullRequest } from '../backend.ts';
import { IdleTimer } from '../idle-timer.ts';
import { findQuantization, normalizeQuantization } from '../quantization.ts';
import { checkModelId, GGUF_SUFFIX, type ModelCatalog } from './catalog.ts';

export interface PullOptions {
  catalog: ModelCatalog;
  /** Where `owner/repo/file.gguf` is found: Hugging Face's layout. */
  hubUrl: string;
  /** A server silent this long (before its answer or between bytes) fails the pull; it can be resumed. */
  idleTimeoutMs: number;
}

const GGUF_MAGIC = 'GGUF';
/** Progress events go out each time this much more has arrived (and at the start and end). */
const PROGRESS_STEP = 0.01;

const inProgress = new Set<string>();

export async function pullModel({ model, quantization, digest }: PullRequest, ctx: CallContext, options: PullOptions) {
  const { url, file } = await locate(model, quantization, options, ctx.signal);
  const id = file.slice(0, -GGUF_SUFFIX.length);
  checkModelId(id);
  const target = options.catalog.pathOf(id);
  if (inProgress.has(target)) throw new AppError('conflict', `${id} is being pulled already`, { details: { model: id } });
  inProgress.add(target);
  try {
    await options.catalog.ensureDir();
    const expected = digest?.replace(/^sha256:/, '').toLowerCase();
    const existing = await stat(target).catch(() => undefined);
    if (existing) {
      const actual = expected && (await hashFile(target)).digest('hex');
      if (actual && actual !== expected) {
        throw new AppError('conflict', `${id} is here already, with sha256 ${actual}, not the digest given (${expected}): delete_model it to pull again`, {
          details: { model: id, expected, actual },
        });
      }
      ctx.event('model_pull_progress', { model: id, status: 'success', completed_bytes: existing.size, total_bytes: existing.size });
      return { model: id, status: 'success' };
    }
    const partial = `${target}.partial`;
    const hash = await download(url, partial, id, ctx, options.idleTimeoutMs);
    ctx.event('model_pull_progress', { model: id, status: 'verifying' });
    await checkMagic(partial, url);
    if (expected) await verify(hash.digest('hex'), expected, partial);
    await rename(partial, target);
    const size = (await stat(target)).size;
    ctx.event('model_pull_progress', { model: id, status: 'success', completed_bytes: size, total_bytes: size });
    return { model: id, status: 'success' };
  } finally {
    inProgress.delete(target);
  }
}

/** A URL as given; `owner/repo/file.gguf` on the hub; `owner/repo` with the one file of that quantization. */
async function locate(model: string, quantization: string | undefined, options: PullOptions, signal: AbortSignal) {
  if (/^https?:\/\//i.test(model)) {
    const file = decodeURIComponent(path.posix.basename(new URL(model).pathname));
    if (!file.endsWith(GGUF_SUFFIX)) throw notGguf(model);
    return { url: model, file };
  }
  const parts = model.split('/');
  if (parts.length < 2 || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new AppError('invalid_request', `The embedded engine pulls GGUF files: give a URL, or owner/repo/file.gguf on the model hub, not "${model}"`, {
      details: { field: 'model' },
    });
  }
  const hub = options.hubUrl.replace(/\/+$/, '');
  const [owner, repo, ...rest] = parts;
  const fileUrl = (name: string) => `${hub}/${owner}/${repo}/resolve/main/${name.split('/').map(encodeURIComponent).join('/')}`;
  if (rest.length > 0) {
    const name = rest.join('/');
    if (!name.endsWith(GGUF_SUFFIX)) throw notGguf(model);
    return { url: fileUrl(name), file: path.posix.basename(name) };
  }
  const name = await pickFile(`${hub}/api/models/${owner}/${repo}`, quantization, model, signal);
  return { url: fileUrl(name), file: path.posix.basename(name) };
}

/** The repository's GGUF file of that quantization (or its only one), from the hub's file list. */
async function pickFile(listUrl: string, quantization: string | undefined, model: string, signal: AbortSignal): Promise<string> {
  const response = await fetch(listUrl, { signal }).catch((error: unknown) => {
    throw unreachable(listUrl, error, signal);
  });
  if (!response.ok) throw statusError(response.status, listUrl, model);
  const { siblings = [] } = (await response.json()) as { siblings?: { rfilename: string }[] };
  const files = siblings.map((s) => s.rfilename).filter((name) => name.endsWith(GGUF_SUFFIX));
  const wanted = quantization ? normalizeQuantization(quantization) : undefined;
  const matching = wanted ? files.filter((name) => findQuantization(path.posix.basename(name))?.name === wanted) : files;
  if (matching.length === 1) return matching[0];
  const have = files.map((name) => findQuantization(name)?.name ?? name).join(', ') || 'none';
  if (matching.length === 0) {
    throw new AppError('not_found', `${model} has no GGUF file${wanted ? ` in ${wanted}` : ''} (it has: ${have})`, { details: { model } });
  }
  throw new AppError('invalid_request', `${model} has several GGUF files: name a quantization (${have}) or the file (owner/repo/file.gguf)`, {
    details: { field: 'quantization' },
  });
}

/** Fetches `url` into `partial`, from where an earlier pull stopped when the server takes a Range; returns the whole file's hash. */
async function download(url: string, partial: string, id: string, ctx: CallContext, idleTimeoutMs: number): Promise<Hash> {
  const have = (await stat(partial).catch(() => undefined))?.size ?? 0;
  const idle = new IdleTimer(idleTimeoutMs, `The server of ${url}`);
  const signal = AbortSignal.any([ctx.signal, idle.signal]);
  let response: Response;
  try {
    response = await fetch(url, { headers: have > 0 ? { range: `bytes=${have}-` } : {}, signal });
  } catch (error) {
    idle.stop();
    throw unreachable(url, error, signal);
  }
  // 416: the partial file already holds every byte (the last pull stopped just before renaming it).
  if (response.status === 416 && have > 0) {
    idle.stop();
    return hashFile(partial);
  }
  if (!response.ok) {
    idle.stop();
    throw statusError(response.status, url, id);
  }
  const resumed = response.status === 206 && have > 0;
  const hash = resumed ? await hashFile(partial) : createHash('sha256');
  let completed = resumed ? have : 0;
  const length = Number(response.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? completed + length : undefined;
  let reported = -1;
  const report = () => {
    ctx.event('model_pull_progress', { model: id, status: 'downloading', completed_bytes: completed, ...(total ? { total_bytes: total } : {}) });
    reported = completed;
  };
  report();
  const file = await open(partial, resumed ? 'a' : 'w');
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      idle.touch();
      await file.write(chunk);
      hash.update(chunk);
      completed += chunk.byteLength;
      if (!total || (completed - reported) / total >= PROGRESS_STEP) report();
    }
  } catch (error) {
    throw signal.aborted ? signal.reason : new AppError('upstream_error', `The download of ${url} broke off at ${completed} bytes: pull again to resume`, { cause: error });
  } finally {
    idle.stop();
    await file.close();
  }
  if (total !== undefined && completed !== total) {
    throw new AppError('upstream_error', `The download of ${url} ended at ${completed} of ${total} bytes: pull again to resume`);
  }
  if (reported !== completed) report();
  return hash;
}

async function hashFile(file: string): Promise<Hash> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash;
}

async function verify(actual: string, expected: string, file: string): Promise<void> {
  if (actual === expected) return;
  await rm(file, { force: true });
  throw new AppError('upstream_error', `The download's sha256 is ${actual}, not the digest given (${expected}); it was deleted`, {
    details: { expected, actual },
  });
}

async function checkMagic(file: string, url: string): Promise<void> {
  const handle = await open(file, 'r');
  const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0).finally(() => handle.close());
  if (bytesRead === 4 && buffer.toString('latin1') === GGUF_MAGIC) return;
  await rm(file, { force: true });
  throw new AppError('invalid_request', `${url} is not a GGUF file (it does not start with "GGUF"); it was deleted`, { details: { field: 'model' } });
}

function notGguf(model: string): AppError {
  return new AppError('invalid_request', `"${model}" does not name a .gguf file: the embedded engine runs GGUF models`, { details: { field: 'model' } });
}

function statusError(status: number, url: string, model: string): AppError {
  const code = status === 404 ? 'not_found' : status >= 500 ? 'upstream_error' : 'invalid_request';
  const hint = status === 401 || status === 403 ? ' (a gated or private model: download it yourself into the models directory)' : '';
  return new AppError(code, `${url} answered ${status} for ${model}${hint}`, { details: { model, status } });
}

function unreachable(url: string, error: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
  return new AppError('upstream_error', `Cannot reach ${url}: ${cause}`, { cause: error });
}
