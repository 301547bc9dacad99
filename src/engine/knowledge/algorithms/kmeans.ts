/**
 * Spherical k-means for topic clustering of document embeddings, plus cluster labels from their terms.
 * Deterministic for a seed (seeded PRNG, fixed tie-breaking), so the same library clusters the same way
 * every time and tests can pin exact assignments.
 */
import { AppError } from '../../../errors.ts';

export interface KmeansOptions {
  /** PRNG seed for k-means++ (default 1). */
  seed?: number;
  /** Upper bound on Lloyd iterations (default 100); usually converges in far fewer. */
  maxIterations?: number;
}

export interface KmeansResult {
  /** Cluster index (0..k-1) per input vector. */
  assignments: number[];
  /** Unit-length centroid per cluster. */
  centroids: Float32Array[];
  /** Assignment passes run, the last one being the pass that changed nothing (unless maxIterations hit). */
  iterations: number;
}

/** mulberry32: a tiny, good-enough 32-bit PRNG; Math.random can't be seeded. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalized(vector: Float32Array): Float32Array {
  let norm = 0;
  for (let i = 0; i < vector.length; i++) norm += vector[i] * vector[i];
  const out = new Float32Array(vector.length);
  if (norm === 0) return out;
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < vector.length; i++) out[i] = vector[i] * scale;
  return out;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * k-means on cosine distance (1 − cos): vectors and centroids are kept at unit length, so "nearest" is the
 * largest dot product and a centroid is its members' mean direction. Initialised with k-means++ (each next
 * centre drawn with probability ∝ distance² to the nearest chosen one), which spreads the initial centres
 * and avoids most bad local optima of random starts.
 */
export function kmeans(vectors: Float32Array[], k: number, options: KmeansOptions = {}): KmeansResult {
  const n = vectors.length;
  if (!Number.isInteger(k) || k < 1) throw new AppError('invalid_request', `k must be a positive integer, got ${k}`);
  if (k > n) {
    throw new AppError('invalid_request', `k must be at most the number of documents (k = ${k}, documents = ${n})`);
  }
  const dims = vectors[0].length;
  if (vectors.some((v) => v.length !== dims)) {
    throw new AppError('invalid_request', 'All vectors must have the same number of dimensions');
  }
  const maxIterations = Math.max(1, Math.floor(options.maxIterations ?? 100));
  const random = mulberry32(options.seed ?? 1);
  const points = vectors.map(normalized);

  // --- k-means++ initialisation. best[i] = similarity of point i to its nearest chosen centre.
  const chosen = new Set<number>();
  const centroids: Float32Array[] = [];
  const best = new Float64Array(n).fill(-Infinity);
  let next = Math.floor(random() * n);
  while (centroids.length < k) {
    chosen.add(next);
    centroids.push(Float32Array.from(points[next]));
    if (centroids.length === k) break;
    const c = centroids[centroids.length - 1];
    let total = 0;
    const weights = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      best[i] = Math.max(best[i], dot(points[i], c));
      const d = chosen.has(i) ? 0 : Math.max(0, 1 - best[i]);
      weights[i] = d * d;
      total += weights[i];
    }
    if (total > 0) {
      let r = random() * total;
      next = -1;
      for (let i = 0; i < n; i++) {
        if (weights[i] === 0) continue;
        next = i;
        r -= weights[i];
        if (r < 0) break;
      }
    } else {
      // Every remaining point duplicates a centre: take the first unchosen one (k ≤ n guarantees one).
      next = 0;
      while (chosen.has(next)) next++;
    }
  }

  // --- Lloyd iterations.
  const assignments = new Array<number>(n).fill(-1);
  const similarity = new Float64Array(n);
  let iterations = 0;
  while (iterations < maxIterations) {
    iterations++;
    let changed = false;
    for (let i = 0; i < n; i++) {
      let bestCluster = 0;
      let bestSim = -Infinity;
      for (let c = 0; c < k; c++) {
        const s = dot(points[i], centroids[c]);
        if (s > bestSim) {
          bestSim = s;
          bestCluster = c;
        }
      }
      similarity[i] = bestSim;
      if (assignments[i] !== bestCluster) {
        assignments[i] = bestCluster;
        changed = true;
      }
    }
    if (!changed) break;

    const sums = Array.from({ length: k }, () => new Float32Array(dims));
    const sizes = new Array<number>(k).fill(0);
    for (let i = 0; i < n; i++) {
      const sum = sums[assignments[i]];
      const p = points[i];
      for (let j = 0; j < dims; j++) sum[j] += p[j];
      sizes[assignments[i]]++;
    }
    const reseeded = new Set<number>();
    for (let c = 0; c < k; c++) {
      if (sizes[c] > 0) {
        centroids[c] = normalized(sums[c]);
        continue;
      }
      // Empty cluster: restart it at the point worst served by its own centroid (ties → lowest index),
      // taken from a cluster that can spare it, so the next pass gives this cluster at least that point.
      let farthest = -1;
      for (let i = 0; i < n; i++) {
        if (reseeded.has(i) || sizes[assignments[i]] < 2) continue;
        if (farthest < 0 || similarity[i] < similarity[farthest]) farthest = i;
      }
      if (farthest < 0) continue;
      reseeded.add(farthest);
      sizes[assignments[farthest]]--;
      centroids[c] = Float32Array.from(points[farthest]);
    }
  }
  return { assignments, centroids, iterations };
}

/**
 * Labels for clusters: per cluster, the `n` terms with the highest (frequency in the cluster) × idf, where
 * idf = ln(1 + N/df) over all N documents. The idf factor pushes down words common to every cluster so the
 * label says what distinguishes this one; the "1 +" keeps it positive so a single-cluster corpus still
 * gets its most frequent terms. Ties are broken alphabetically. A cluster with no documents gets [].
 */
export function representativeTerms(docs: string[][], assignments: number[], k: number, n = 5): string[][] {
  const df = new Map<string, number>();
  for (const tokens of docs) for (const term of new Set(tokens)) df.set(term, (df.get(term) ?? 0) + 1);
  const clusterTf = Array.from({ length: k }, () => new Map<string, number>());
  docs.forEach((tokens, d) => {
    const tf = clusterTf[assignments[d]];
    if (!tf) return; // assignment outside 0..k-1: ignore rather than crash on bad input
    for (const term of tokens) tf.set(term, (tf.get(term) ?? 0) + 1);
  });
  const total = docs.length;
  return clusterTf.map((tf) =>
    [...tf]
      .map(([term, count]) => ({ term, score: count * Math.log(1 + total / df.get(term)!) }))
      .sort((a, b) => b.score - a.score || (a.term < b.term ? -1 : a.term > b.term ? 1 : 0))
      .slice(0, n)
      .map(({ term }) => term),
  );
}
