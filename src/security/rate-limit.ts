/**
 * Token buckets: `burst` tokens at most, refilled at `perSecond`; each request takes one. Over the limit, the
 * answer is how long until a token is back, for a `retry_after_ms` the caller can act on.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes a token: 0 when there was one, else the milliseconds until there is. */
  take(now = Date.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  /** Back to a full bucket by `now`: nothing to remember about this key. */
  fullAt(now: number): boolean {
    return this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond >= this.burst;
  }
}

/** One bucket per key (a client address); buckets that have refilled are forgotten, so memory follows activity. */
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  /** `perSecond` 0 turns the limit off. */
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {}

  take(key: string, now = Date.now()): number {
    if (this.perSecond === 0) return 0;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= 1_000) this.forgetFull(now);
      this.buckets.set(key, (bucket = new TokenBucket(this.burst, this.perSecond, now)));
    }
    return bucket.take(now);
  }

  private forgetFull(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.fullAt(now)) this.buckets.delete(key);
  }
}
