/**
 * CORS: `chrome-extension://` origins are answered (extensions are who this server is for), plus configured
 * web origins; `*` in the list allows any. Listing extension origins (`chrome-extension://<id>`) narrows the
 * extensions to those. Requests without an Origin (other services, curl) need no CORS.
 */
const ALLOWED_HEADERS = 'authorization, content-type, trpc-accept, x-trpc-source, last-event-id';
const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';

const EXTENSION = 'chrome-extension://';

export function isOriginAllowed(origin: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*') || allowed.some((entry) => sameOrigin(entry, origin))) return true;
  return origin.startsWith(EXTENSION) && !allowed.some((entry) => entry.startsWith(EXTENSION));
}

/** Origins compare without a trailing slash: Chrome sends `chrome-extension://<id>`, manifests write `.../<id>/`. */
function sameOrigin(entry: string, origin: string): boolean {
  return entry.replace(/\/+$/, '') === origin;
}

export function corsHeaders(origin: string): Record<string, string> {
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
  };
}

export function preflightHeaders(origin: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    'access-control-allow-methods': ALLOWED_METHODS,
    'access-control-allow-headers': ALLOWED_HEADERS,
    'access-control-max-age': '600',
  };
}
