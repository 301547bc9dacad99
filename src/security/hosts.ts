/**
 * The `Host` allowlist, against DNS rebinding: a web page on `evil.example` whose name the attacker re-points at
 * 127.0.0.1 makes same-origin requests to this server, with no `Origin` header to refuse, but with
 * `Host: evil.example`. So the server answers only to names that are its own:
 * - `localhost` and `*.localhost`, which browsers resolve to loopback themselves (RFC 6761);
 * - IP addresses (`127.0.0.1`, `[::1]`, a LAN address): a rebinding attack needs a name, so an address cannot be one;
 * - the names in TABAGENT_ALLOWED_HOSTS: exact (`tabagent.lan`), or a domain and its subdomains (`.example.com`);
 *   `*` turns the check off, for a reverse proxy that already checks.
 * Ports are not compared: the attacker's page reaches the server's own port anyway.
 */
import { isIP } from 'node:net';

export class HostAllowlist {
  readonly #names: Set<string>;
  readonly #domains: string[];
  readonly #any: boolean;

  constructor(entries: readonly string[]) {
    const normalized = entries.map((entry) => entry.toLowerCase());
    this.#any = normalized.includes('*');
    this.#names = new Set(normalized.filter((entry) => !entry.startsWith('.')));
    this.#domains = normalized.filter((entry) => entry.startsWith('.'));
  }

  /**
   * Whether a request whose `Host` header is `host` is for this server; a malformed one is not. A request without
   * one is: browsers always send it, so it comes from a program (an HTTP/1.0 health check), not a page.
   */
  allows(host: string | null): boolean {
    if (this.#any || host === null) return true;
    const name = hostName(host);
    if (name === undefined) return false;
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return true;
    return this.#names.has(name) || this.#domains.some((domain) => name.endsWith(domain) || name === domain.slice(1));
  }
}

/**
 * The name in a Host header, lowercased, without its port or a final dot (`Example.COM.:8080` is `example.com`);
 * an IPv6 address without its brackets. Undefined when it is not one (a path, userinfo, spaces, an empty name).
 */
export function hostName(host: string): string | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]/@\s]+))(?::\d{1,5})?$/i.exec(host);
  if (!match) return undefined;
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? match[1].toLowerCase() : undefined;
  const name = match[2].toLowerCase().replace(/\.$/, '');
  return name === '' ? undefined : name;
}

/** Whether the server binds only loopback (then nothing else can reach it, and no host list needs saying). */
export function isLoopbackBind(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '::1' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
