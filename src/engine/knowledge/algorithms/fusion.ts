/**
 * Reciprocal Rank Fusion (Cormack, Clarke & Büttcher 2009) for hybrid search.
 *
 * Why ranks, not scores: BM25 scores are unbounded and depend on the corpus and the query length (a
 * three-word query scores higher than a one-word one), while cosine similarities live in [-1, 1] and cluster
 * in a narrow band that differs per embedding model. Any weighted sum of the raw scores needs per-corpus
 * tuning; RRF uses only each document's position in each list, so it needs no normalization:
 *
 *   fused(d) = Σ_lists 1 / (k + rank_list(d))      rank is 1-based; lists where d is absent add nothing
 *
 * k = 60 (the paper's value) damps the head of each list so one list's first place can't drown out a
 * document that ranks well in all lists.
 */
import type { Scored } from './vector-index.ts';

/** Fused list, best first; ties broken by the smaller id. A repeated id within one list counts at its best rank. */
export function reciprocalRankFusion(lists: Scored[][], k = 60): Scored[] {
  const fused = new Map<number, number>();
  for (const list of lists) {
    const seen = new Set<number>();
    list.forEach(({ id }, index) => {
      if (seen.has(id)) return;
      seen.add(id);
      fused.set(id, (fused.get(id) ?? 0) + 1 / (k + index + 1));
    });
  }
  return [...fused].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score || a.id - b.id);
}
