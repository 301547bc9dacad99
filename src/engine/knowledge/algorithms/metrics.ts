/**
 * Retrieval quality metrics for evaluating search/embedding choices against a labelled query set where each
 * query has exactly one relevant document. Definitions (rank = 1-based position of the relevant document in
 * the query's ranking, ∞ when absent; every metric is the mean over queries):
 *
 *   mrr        = mean of 1/rank                                  (0 when absent)
 *   recall@k   = fraction of queries with rank ≤ k               (with one relevant doc, recall@k = hit@k)
 *   ndcg@10    = mean of 1/log2(rank + 1) when rank ≤ 10, else 0 (binary relevance, one relevant doc:
 *                the ideal DCG is 1/log2(2) = 1, so nDCG equals DCG)
 *   queries    = number of queries
 *
 * With no queries every metric is 0.
 */
import { AppError } from '../../../errors.ts';

export function retrievalMetrics(rankings: number[][], relevant: number[], ks: number[] = [1, 5, 10]): Record<string, number> {
  if (rankings.length !== relevant.length) {
    throw new AppError(
      'invalid_request',
      `rankings and relevant must have one entry per query (got ${rankings.length} and ${relevant.length})`,
    );
  }
  const queries = rankings.length;
  let mrr = 0;
  let ndcg = 0;
  const hits = new Map<number, number>(ks.map((k) => [k, 0]));
  rankings.forEach((ranking, q) => {
    const index = ranking.indexOf(relevant[q]);
    if (index < 0) return;
    const rank = index + 1;
    mrr += 1 / rank;
    if (rank <= 10) ndcg += 1 / Math.log2(rank + 1);
    for (const k of ks) if (rank <= k) hits.set(k, hits.get(k)! + 1);
  });
  const mean = (sum: number) => (queries ? sum / queries : 0);
  const result: Record<string, number> = { mrr: mean(mrr) };
  for (const k of ks) result[`recall@${k}`] = mean(hits.get(k)!);
  result['ndcg@10'] = mean(ndcg);
  result.queries = queries;
  return result;
}
