/**
 * API-key authentication: `Authorization: Bearer <key>` checked against the configured keys. With no keys
 * configured nothing is checked and every caller is the same anonymous identity. An identity is named by a short
 * key id (never the key): sessions and stored data record it as their owner, logs may show it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { Identity } from '../protocol/handlers.ts';

export type { Identity } from '../protocol/handlers.ts';

/** The id of everyone when no keys are configured (and of every row stored before keys were). */
export const ANONYMOUS = 'anonymous';
/**
 * Everyone, when no keys are configured; also the native messaging host, which only the extensions in its
 * manifest's `allowed_origins` can start.
 */
export const ANONYMOUS_IDENTITY: Identity = Object.freeze({ id: ANONYMOUS, admin: true });

export class ApiKeys {
  readonly #keys: { digest: Buffer; identity: Identity }[];

  /** `adminKeys` are keys too: they need not be repeated in `keys`. */
  constructor(keys: readonly string[], adminKeys: readonly string[] = []) {
    const admin = new Set(adminKeys);
    this.#keys = [...new Set([...keys, ...adminKeys])].map((key) => ({
      digest: sha256(key),
      identity: Object.freeze({ id: keyId(key), admin: admin.has(key) }),
    }));
  }

  /** Whether requests must carry a key. */
  get required(): boolean {
    return this.#keys.length > 0;
  }

  /**
   * The caller's identity from an `Authorization` header (or the same text in a WebSocket subprotocol).
   * Throws `unauthorized` when keys are required and it is missing or matches none.
   */
  authenticate(authorization: string | null | undefined): Identity {
    if (!this.required) return ANONYMOUS_IDENTITY;
    const presented = bearerToken(authorization);
    if (presented === undefined) throw new AppError('unauthorized', 'Missing API key: send Authorization: Bearer <key>');
    const identity = this.match(presented);
    if (identity === undefined) throw new AppError('unauthorized', 'Invalid API key');
    return identity;
  }

  /**
   * The identity of the key `presented` equals, if any. Compares fixed-length digests in constant time and checks
   * every key, so neither the length of a key nor which one matched shows in the timing.
   */
  match(presented: string): Identity | undefined {
    const digest = sha256(presented);
    let found: Identity | undefined;
    for (const key of this.#keys) if (timingSafeEqual(digest, key.digest)) found = key.identity;
    return found;
  }
}

/** Whether two secrets (tokens, tickets) are equal, in time that depends on neither. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** A key's public name: the first 16 hex digits of its SHA-256 (64 bits: distinct keys do not share one). */
export function keyId(key: string): string {
  return sha256(key).toString('hex').slice(0, 16);
}

/** The key in `Bearer <key>` (scheme case-insensitive), or undefined. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  return match?.[1];
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
