import { createHmac } from 'node:crypto';
import type { Config, IceServer } from '../config.ts';

/**
 * The ICE servers a peer is given: the configured STUN/TURN list, plus the TURN servers of `TABAGENT_TURN_URLS`
 * with ephemeral credentials from the shared secret (coturn's "TURN REST API" scheme, `use-auth-secret`):
 * username `<expiry unix seconds>:<user>`, credential base64(HMAC-SHA1(secret, username)). A TURN server with the
 * same secret accepts them until the expiry, and no long-lived TURN password leaves the server.
 */
export function iceServersFor(config: Config, user: string, now = Date.now()): { iceServers: IceServer[]; expiresAt?: Date } {
  if (!config.turnUrls.length || !config.turnSecret) return { iceServers: config.iceServers };
  const expiry = Math.floor(now / 1000) + config.turnTtlS;
  const username = `${expiry}:${user.replaceAll(':', '_')}`;
  const credential = turnCredential(config.turnSecret, username);
  return { iceServers: [...config.iceServers, { urls: config.turnUrls, username, credential }], expiresAt: new Date(expiry * 1000) };
}

export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}
