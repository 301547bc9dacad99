import { AppError } from '../../../errors.ts';

/** One Server-Sent Event: its `event:` name (absent for plain `data:` events) and its joined `data:` lines. */
export interface SseEvent {
  event?: string;
  data: string;
}

/** A line longer than this is not a sane event: the stream is treated as malformed instead of buffering forever. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Splits a byte stream into text lines as they arrive (`\n`, `\r\n` or `\r`), decoding UTF-8 across chunks. */
export async function* lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let i = 0; i < pending.length; i++) {
      const c = pending.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i + 1 === pending.length) break; // a \r at the end may be half of \r\n: wait for more
      yield pending.slice(start, i);
      if (c === 13 && pending.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    pending = pending.slice(start);
    if (pending.length > MAX_LINE_BYTES) throw malformed('a line longer than 16 MiB');
  }
  pending += decoder.decode();
  if (pending) yield pending;
}

/** Parses `text/event-stream` incrementally, per the HTML spec's rules (comments, multi-line data, BOM-free). */
export async function* sseEvents(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  let event: string | undefined;
  let data: string[] = [];
  for await (const line of lines(chunks)) {
    if (line === '') {
      if (data.length) yield event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') };
      event = undefined;
      data = [];
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  }
  if (data.length) yield event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') };
}

/** Newline-delimited JSON (Ollama's streams), one value per non-empty line. */
export async function* ndjson(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
  for await (const line of lines(chunks)) {
    if (line.trim()) yield parseJson(line);
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformed(`invalid JSON ${JSON.stringify(text.slice(0, 80))}`);
  }
}

export function malformed(what: string): AppError {
  return new AppError('upstream_error', `The upstream sent a malformed stream: ${what}`);
}
