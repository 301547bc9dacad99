/**
 * Exact cosine-similarity search, brute force. For the corpus sizes of a browser knowledge base (tens of
 * thousands of chunks) a tight scan over one contiguous Float32Array is a few milliseconds and has no
 * recall loss, no build step and trivial deletes, so an approximate index (HNSW, IVF) isn't worth it yet.
 */
import { AppError } from '../../../errors.ts';

/** Cosine similarity of two vectors of the same length; 0 when either is all zeros. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

export interface Scored {
  id: number;
  score: number;
}

/**
 * Keeps the best `k` of a stream of (id, score) pairs in a bounded min-heap: O(n log k) instead of sorting all
 * n scores. Ties are broken by the smaller id so results are deterministic. Shared by BM25 and fusion.
 */
export class TopK {
  private readonly ids: Float64Array;
  private readonly scores: Float64Array;
  private count = 0;

  constructor(private readonly k: number) {
    this.ids = new Float64Array(Math.max(0, k));
    this.scores = new Float64Array(Math.max(0, k));
  }

  /** true when a is a worse result than b (lower score, or same score and larger id). */
  private worse(a: number, b: number): boolean {
    const sa = this.scores[a];
    const sb = this.scores[b];
    return sa < sb || (sa === sb && this.ids[a] > this.ids[b]);
  }

  private swap(a: number, b: number): void {
    const id = this.ids[a];
    this.ids[a] = this.ids[b];
    this.ids[b] = id;
    const s = this.scores[a];
    this.scores[a] = this.scores[b];
    this.scores[b] = s;
  }

  /** Cheap pre-check so callers can skip work: would this score enter the heap? */
  wouldAccept(score: number): boolean {
    return this.k > 0 && (this.count < this.k || score >= this.scores[0]);
  }

  push(id: number, score: number): void {
    if (this.k <= 0) return;
    if (this.count < this.k) {
      let i = this.count++;
      this.ids[i] = id;
      this.scores[i] = score;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.worse(i, parent)) break;
        this.swap(i, parent);
        i = parent;
      }
      return;
    }
    // Full: replace the root (the worst kept) only if the new pair is better.
    if (score < this.scores[0] || (score === this.scores[0] && id > this.ids[0])) return;
    this.ids[0] = id;
    this.scores[0] = score;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.count && this.worse(l, m)) m = l;
      if (r < this.count && this.worse(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }

  /** Best first. */
  result(): Scored[] {
    const out: Scored[] = [];
    for (let i = 0; i < this.count; i++) out.push({ id: this.ids[i], score: this.scores[i] });
    return out.sort((a, b) => b.score - a.score || a.id - b.id);
  }
}

export class VectorIndex {
  readonly dims: number;
  /** Row-major matrix of unit vectors; rows [0, size) are live. Grows by doubling. */
  private matrix: Float32Array;
  private rowIds: number[] = [];
  private rowOf = new Map<number, number>();

  constructor(dims: number) {
    if (!Number.isInteger(dims) || dims < 1) {
      throw new AppError('invalid_request', `Vector dimensions must be a positive integer, got ${dims}`);
    }
    this.dims = dims;
    this.matrix = new Float32Array(dims * 16);
  }

  get size(): number {
    return this.rowIds.length;
  }

  has(id: number): boolean {
    return this.rowOf.has(id);
  }

  /** Adds a vector, or replaces the one stored under `id`. Stored normalized, so search is one dot product. */
  add(id: number, vector: Float32Array): void {
    if (vector.length !== this.dims) {
      throw new AppError('invalid_request', `Vector has ${vector.length} dimensions, the index expects ${this.dims}`);
    }
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.rowIds.length;
      if ((row + 1) * this.dims > this.matrix.length) {
        const grown = new Float32Array(this.matrix.length * 2);
        grown.set(this.matrix);
        this.matrix = grown;
      }
      this.rowIds.push(id);
      this.rowOf.set(id, row);
    }
    let norm = 0;
    for (let i = 0; i < this.dims; i++) norm += vector[i] * vector[i];
    // A zero vector stays zero: it scores 0 against everything rather than NaN.
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    const base = row * this.dims;
    for (let i = 0; i < this.dims; i++) this.matrix[base + i] = vector[i] * scale;
  }

  /** Moves the last row into the removed one: O(dims), keeps the matrix dense. */
  remove(id: number): boolean {
    const row = this.rowOf.get(id);
    if (row === undefined) return false;
    const last = this.rowIds.length - 1;
    if (row !== last) {
      const lastId = this.rowIds[last];
      this.matrix.copyWithin(row * this.dims, last * this.dims, (last + 1) * this.dims);
      this.rowIds[row] = lastId;
      this.rowOf.set(lastId, row);
    }
    this.rowIds.pop();
    this.rowOf.delete(id);
    return true;
  }

  /** The k most cosine-similar vectors, best first; `accept` filters ids before scoring (e.g. by collection). */
  search(query: Float32Array, k: number, accept?: (id: number) => boolean): Scored[] {
    if (query.length !== this.dims) {
      throw new AppError('invalid_request', `Query has ${query.length} dimensions, the index expects ${this.dims}`);
    }
    if (k <= 0 || this.rowIds.length === 0) return [];
    const dims = this.dims;
    let norm = 0;
    for (let i = 0; i < dims; i++) norm += query[i] * query[i];
    if (norm === 0) return [];
    // Float64 query: the products are then computed in double precision (no float32 rounding per step),
    // and it measured faster in V8 than a Float32Array query.
    const q = new Float64Array(dims);
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dims; i++) q[i] = query[i] * scale;

    const top = new TopK(Math.min(k, this.rowIds.length));
    const m = this.matrix;
    const rows = this.rowIds.length;
    const tail = dims - (dims % 4);
    for (let row = 0; row < rows; row++) {
      const id = this.rowIds[row];
      if (accept && !accept(id)) continue;
      // Four accumulators: breaks the add dependency chain so the CPU can pipeline the multiplies.
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = row * dims;
      let i = 0;
      for (; i < tail; i += 4, j += 4) {
        s0 += q[i] * m[j];
        s1 += q[i + 1] * m[j + 1];
        s2 += q[i + 2] * m[j + 2];
        s3 += q[i + 3] * m[j + 3];
      }
      for (; i < dims; i++, j++) s0 += q[i] * m[j];
      const score = s0 + s1 + s2 + s3;
      if (top.wouldAccept(score)) top.push(id, score);
    }
    return top.result();
  }
}
