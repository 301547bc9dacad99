/**
 * API-key authentication: `Authorization: Bearer <key>` checked against the configured keys. With no keys
 * configured nothing is checked and every caller is the same anonymous identity. An identity is a short key id
 * (never the key): sessions record it as their owner, logs may show it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.ts';

/** Everyone's identity when no keys are configured. */
export const ANONYMOUS = 'anonymous';
/** Shorter keys are refused at startup: a key is a password nobody types, so it can be long. */
export const MIN_KEY_LENGTH = 16;

export class ApiKeys {
  readonly #keys: { digest: Buffer; id: string }[];

  constructor(keys: readonly string[]) {
    this.#keys = keys.map((key) => ({ digest: sha256(key), id: keyId(key) }));
  }

  /** Whether requests must carry a key. */
  get required(): boolean {
    return this.#keys.length > 0;
  }

  /**
   * The caller's identity from an `Authorization` value (a header, or the same text in tRPC connectionParams).
   * Throws `unauthorized` when keys are required and it is missing or matches none.
   */
  authenticate(authorization: string | null | undefined): string {
    if (!this.required) return ANONYMOUS;
    const presented = bearerToken(authorization);
    if (presented === undefined) throw new AppError('unauthorized', 'Missing API key: send Authorization: Bearer <key>');
    const id = this.match(presented);
    if (id === undefined) throw new AppError('unauthorized', 'Invalid API key');
    return id;
  }

  /**
   * The id of the key `presented` equals, if any. Compares fixed-length digests in constant time and checks every
   * key, so neither the length of a key nor which one matched shows in the timing.
   */
  match(presented: string): string | undefined {
    const digest = sha256(presented);
    let found: string | undefined;
    for (const key of this.#keys) if (timingSafeEqual(digest, key.digest)) found = key.id;
    return found;
  }
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

/** A keys file: one key per line; blank lines and lines starting with `#` are ignored (a key may contain `#`). */
export function parseKeysFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
