import { AppError } from '../errors.ts';

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

/**
 * New sessions per client address, one budget for everything that opens one (a WebRTC session, a WebSocket): over
 * it, `admit` throws `rate_limited` with `retry_after_ms`. A resume is not a new session and does not ask.
 */
export class SessionRate {
  private readonly limiter: RateLimiter;

  constructor(private readonly perMinute: number) {
    this.limiter = new RateLimiter(perMinute, perMinute / 60);
  }

  admit(ip: string): void {
    const wait = this.limiter.take(ip);
    if (wait > 0) {
      throw new AppError('rate_limited', `More than ${this.perMinute} new sessions a minute from this address; retry in ${Math.ceil(wait / 1000)} s`, {
        details: { retry_after_ms: wait },
      });
    }
  }
}

/**
 * One link's message budget (a session's data channels, a WebSocket, a native port): `take` answers the
 * `rate_limited` error for a message over it, undefined while within. The link stays up either way.
 */
export class MessageRate {
  private readonly bucket: TokenBucket | undefined;

  /** `perSecond` messages a second, `burst` at once above it; a rate of 0 turns the budget off. */
  constructor({ perSecond, burst }: { perSecond: number; burst: number }) {
    this.bucket = perSecond > 0 ? new TokenBucket(burst, perSecond) : undefined;
  }

  take(): AppError | undefined {
    const wait = this.bucket?.take() ?? 0;
    if (wait === 0) return undefined;
    return new AppError('rate_limited', `Too many messages; retry in ${wait} ms`, { details: { retry_after_ms: wait } });
  }
}
