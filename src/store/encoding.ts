/** What the SQL receives: every input checked (typed errors before any transaction) and encoded as JSON text. */
import { AppError } from '../errors.ts';
import type { DocumentSource, DocumentWrite, Metadata } from './types.ts';

/** Longest id (document, session, setting key) and model name the store accepts. */
export const MAX_ID_LENGTH = 512;
/** Rows per bulk statement, and the JSON text size (UTF-16 units) at which a batch is sent early. */
export const BATCH_ROWS = 2_000;
export const BATCH_CHARS = 8 * 1024 * 1024;

interface Batch {
  /** JSON arrays of rows, as text. */
  documents: string;
  chunks: string;
  vectors: string;
  chunkCount: number;
  vectorCount: number;
}

/** Validates every document and encodes them as JSON batches (before the transaction starts). */
export function encodeDocuments(documents: DocumentWrite[]): Batch[] {
  const batches: Batch[] = [];
  let docs: string[] = [];
  let chunks: string[] = [];
  let vectors: string[] = [];
  let chars = 0;
  const flush = () => {
    if (!docs.length) return;
    batches.push({
      documents: `[${docs.join(',')}]`,
      chunks: `[${chunks.join(',')}]`,
      vectors: `[${vectors.join(',')}]`,
      chunkCount: chunks.length,
      vectorCount: vectors.length,
    });
    docs = [];
    chunks = [];
    vectors = [];
    chars = 0;
  };
  const seen = new Set<string>();
  let k = 0;
  documents.forEach((document, i) => {
    if (!isObject(document)) throw invalid(`document ${i} must be an object`);
    const id = checkId(document.id, 'document id');
    if (seen.has(id)) throw invalid(`document id ${JSON.stringify(id.slice(0, 80))} appears twice`);
    seen.add(id);
    const what = `document ${JSON.stringify(id.slice(0, 80))}`;
    const content = checkText(document.content, `the content of ${what}`);
    const metadata = jsonText(checkMetadata(document.metadata ?? {}, `the metadata of ${what}`), `the metadata of ${what}`);
    const source = checkSource(document.source);
    if (!Array.isArray(document.chunks)) throw invalid(`the chunks of ${what} must be an array`);
    const row = `{"i":${i},"id":${JSON.stringify(id)},"content":${JSON.stringify(content)},"metadata":${metadata},"source":"${source}"}`;
    docs.push(row);
    chars += row.length;
    document.chunks.forEach((chunk, ordinal) => {
      if (!isObject(chunk)) throw invalid(`chunk ${ordinal} of ${what} must be an object`);
      const text = checkText(chunk.content, `chunk ${ordinal} of ${what}`);
      const chunkRow = `{"k":${k++},"d":${JSON.stringify(id)},"o":${ordinal},"c":${JSON.stringify(text)}}`;
      chunks.push(chunkRow);
      chars += chunkRow.length;
      const list = chunk.vectors ?? [];
      if (!Array.isArray(list)) throw invalid(`the vectors of chunk ${ordinal} of ${what} must be an array`);
      const models = new Set<string>();
      for (const item of list) {
        if (!isObject(item)) throw invalid(`the vectors of chunk ${ordinal} of ${what} must be objects`);
        const model = checkId(item.model, 'model');
        if (models.has(model)) throw invalid(`chunk ${ordinal} of ${what} has two vectors for model ${JSON.stringify(model)}`);
        models.add(model);
        const vectorRow = `{"d":${JSON.stringify(id)},"o":${ordinal},"m":${JSON.stringify(model)},"v":"${encodeVector(item.vector, `a vector of chunk ${ordinal} of ${what}`)}"}`;
        vectors.push(vectorRow);
        chars += vectorRow.length;
      }
    });
    if (docs.length >= BATCH_ROWS || chunks.length >= BATCH_ROWS || chars >= BATCH_CHARS) flush();
  });
  flush();
  return batches;
}

/** Validates vectors to store for chunks and encodes them as JSON batches of `{ id, v }` (v: hex bytes). */
export function encodeVectors(vectors: { chunk_id: number; vector: Float32Array }[]): string[] {
  const batches: string[] = [];
  let rows: string[] = [];
  let chars = 0;
  const seen = new Set<number>();
  for (const item of vectors) {
    if (!isObject(item)) throw invalid('each vector must be an object');
    const chunkId = checkCursor(item.chunk_id, 'chunk_id');
    if (seen.has(chunkId)) throw invalid(`chunk ${chunkId} appears twice`);
    seen.add(chunkId);
    const row = `{"id":${chunkId},"v":"${encodeVector(item.vector, `the vector of chunk ${chunkId}`)}"}`;
    rows.push(row);
    chars += row.length;
    if (rows.length >= BATCH_ROWS || chars >= BATCH_CHARS) {
      batches.push(`[${rows.join(',')}]`);
      rows = [];
      chars = 0;
    }
  }
  if (rows.length) batches.push(`[${rows.join(',')}]`);
  return batches;
}

// ---- vectors ----

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A Float32Array's bytes, little-endian, as hex: the text both dialects turn into bytes inside SQL (PostgreSQL's
 * `decode(x, 'hex')`, SQLite's `unhex(x)`; SQLite has no base64).
 */
export function encodeVector(vector: unknown, what: string): string {
  if (!(vector instanceof Float32Array)) throw invalid(`${what} must be a Float32Array`);
  if (vector.length === 0) throw invalid(`${what} is empty`);
  const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  if (LITTLE_ENDIAN) return bytes.toString('hex');
  return Buffer.from(bytes).swap32().toString('hex');
}

/** A fresh (aligned) Float32Array from little-endian bytes, as a column of bytes comes back from either driver. */
export function decodeVector(bytes: Uint8Array): Float32Array {
  const vector = new Float32Array(bytes.byteLength >>> 2);
  const target = new Uint8Array(vector.buffer);
  target.set(bytes.subarray(0, vector.byteLength));
  if (!LITTLE_ENDIAN) Buffer.from(target.buffer).swap32();
  return vector;
}

// ---- validation ----

export function invalid(message: string): AppError {
  return new AppError('invalid_request', message);
}

export function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** PostgreSQL text cannot hold NUL. */
function hasNul(text: string): boolean {
  return text.includes('\0');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Lone UTF-16 surrogates cannot be UTF-8; they become U+FFFD (what a driver's UTF-8 encoding would do). */
function wellFormed(text: string): string {
  LONE_SURROGATE.lastIndex = 0;
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(`${what} must be a non-empty string`);
  if (value.length > MAX_ID_LENGTH) throw invalid(`${what} is longer than ${MAX_ID_LENGTH} characters`);
  if (hasNul(value)) throw invalid(`${what} contains a NUL character`);
  if (wellFormed(value) !== value) throw invalid(`${what} is not valid Unicode (a lone surrogate)`);
  return value;
}

export function checkText(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  if (hasNul(value)) throw invalid(`${what} contains a NUL character`);
  return wellFormed(value);
}

export function checkMetadata(value: unknown, what: string): Metadata {
  if (!isObject(value)) throw invalid(`${what} must be an object`);
  return value;
}

export function checkSource(value: unknown): DocumentSource {
  if (value !== 'document' && value !== 'message') throw invalid('source must be "document" or "message"');
  return value;
}

export function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalid(`${what} must be a non-negative integer`);
  return value;
}

export function checkCursor(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid(`${what} must be an integer`);
  return Math.max(0, value);
}

/** JSON text both stores accept (PostgreSQL's jsonb is the stricter): no NUL in strings or keys, well-formed Unicode. */
export function jsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, function (this: unknown, key: string, item: unknown) {
      if (hasNul(key) || wellFormed(key) !== key) throw invalid(`${what} has a key with a NUL character or invalid Unicode`);
      if (typeof item === 'string') {
        if (hasNul(item)) throw invalid(`${what} contains a NUL character`);
        return wellFormed(item);
      }
      return item;
    });
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw invalid(`${what} is not JSON-serializable (${error instanceof Error ? error.message : String(error)})`);
  }
  if (text === undefined) throw invalid(`${what} is not JSON-serializable`);
  return text;
}

// ---- errors ----

