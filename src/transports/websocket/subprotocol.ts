/**
 * WebSocket subprotocols: `tabagent`, which the server accepts, and a browser's way to send an API key. A browser's
 * `WebSocket` cannot set headers, so it offers the key as a second subprotocol, `tabagent.bearer.<key as
 * base64url>`: `new WebSocket(url, ['tabagent', 'tabagent.bearer.…'])`. The server answers with `tabagent` alone,
 * so the key is never echoed. No Node imports: the browser bundle uses it too.
 */
export const SUBPROTOCOL = 'tabagent';
const BEARER_PREFIX = `${SUBPROTOCOL}.bearer.`;

/** The subprotocols to offer: `tabagent`, and the key's when there is one. */
export function subprotocols(apiKey?: string): string[] {
  return apiKey ? [SUBPROTOCOL, BEARER_PREFIX + base64url(apiKey)] : [SUBPROTOCOL];
}

/** An `Authorization` value (`Bearer <key>`) from a `Sec-WebSocket-Protocol` header, when it offers a key. */
export function authorizationFromSubprotocols(header: string | null): string | undefined {
  const offered = header?.split(',').map((part) => part.trim()).find((part) => part.startsWith(BEARER_PREFIX));
  if (offered === undefined) return undefined;
  const key = fromBase64url(offered.slice(BEARER_PREFIX.length));
  return key === undefined ? undefined : `Bearer ${key}`;
}

/** The subprotocol the server accepts of those a client offered: `tabagent`, or none. */
export function chooseSubprotocol(offered: Set<string>): string | undefined {
  return offered.has(SUBPROTOCOL) ? SUBPROTOCOL : undefined;
}

function base64url(text: string): string {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(encoded: string): string | undefined {
  try {
    const binary = atob(encoded.replace(/-/g, '+').replace(/_/g, '/'));
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
  } catch {
    return undefined; // not base64url, or not UTF-8: no key, so `unauthorized`
  }
}
