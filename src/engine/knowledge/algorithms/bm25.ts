/**
 * Okapi BM25 keyword search over token lists (from `tokenize`). Complements the vector index: exact terms,
 * names and numbers that an embedding blurs. Incremental: documents are added and removed one at a time,
 * with document frequencies and the average length kept current, so there is no rebuild step.
 *
 *   score(q, d) = Σ_{t ∈ q} idf(t) · tf(t,d)·(k1 + 1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
 *   idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))     (the "+1" keeps idf positive for common terms)
 *
 * k1 = 1.2 (how fast repeated terms saturate) and b = 0.75 (how much long documents are penalised) are the
 * usual defaults. Repeated query terms count once: a query is a set of words to find.
 */
import { TopK, type Scored } from './vector-index.ts';

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;

export class Bm25Index {
  /** term → (doc id → term frequency in that doc). The size of the inner map is df(term). */
  private readonly postings = new Map<string, Map<number, number>>();
  /** doc id → its length in tokens and its distinct terms (needed to undo the postings on remove). */
  private readonly docs = new Map<number, { length: number; terms: string[] }>();
  private totalLength = 0;

  get size(): number {
    return this.docs.size;
  }

  get averageLength(): number {
    return this.docs.size ? this.totalLength / this.docs.size : 0;
  }

  has(id: number): boolean {
    return this.docs.has(id);
  }

  /** Adds a document, or replaces the one stored under `id`. */
  add(id: number, tokens: string[]): void {
    if (this.docs.has(id)) this.remove(id);
    // Count straight into the postings (no per-document tf map): one Map lookup per token.
    const terms: string[] = [];
    for (const token of tokens) {
      let posting = this.postings.get(token);
      if (!posting) this.postings.set(token, (posting = new Map()));
      const tf = posting.get(id);
      if (tf === undefined) terms.push(token);
      posting.set(id, (tf ?? 0) + 1);
    }
    this.docs.set(id, { length: tokens.length, terms });
    this.totalLength += tokens.length;
  }

  remove(id: number): boolean {
    const doc = this.docs.get(id);
    if (!doc) return false;
    for (const term of doc.terms) {
      const posting = this.postings.get(term)!;
      posting.delete(id);
      if (posting.size === 0) this.postings.delete(term); // keep the vocabulary from growing forever
    }
    this.docs.delete(id);
    this.totalLength -= doc.length;
    return true;
  }

  /** idf of a term in the current corpus (0 for an unknown term: it contributes nothing). */
  idf(term: string): number {
    const df = this.postings.get(term)?.size ?? 0;
    if (df === 0) return 0;
    const n = this.docs.size;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** The k best-scoring documents, best first. Only documents containing a query term are scored. */
  search(queryTokens: string[], k: number, accept?: (id: number) => boolean): Scored[] {
    if (k <= 0 || this.docs.size === 0) return [];
    const avgdl = this.averageLength || 1;
    const scores = new Map<number, number>();
    for (const term of new Set(queryTokens)) {
      const posting = this.postings.get(term);
      if (!posting) continue;
      const idf = this.idf(term);
      for (const [id, tf] of posting) {
        if (accept && !accept(id)) continue;
        const length = this.docs.get(id)!.length;
        const norm = BM25_K1 * (1 - BM25_B + (BM25_B * length) / avgdl);
        scores.set(id, (scores.get(id) ?? 0) + (idf * tf * (BM25_K1 + 1)) / (tf + norm));
      }
    }
    const top = new TopK(k);
    for (const [id, score] of scores) if (top.wouldAccept(score)) top.push(id, score);
    return top.result();
  }
}
