/**
 * Which address a request comes from, for the per-address limits: the connection's own, unless the connection is a
 * proxy named in TABAGENT_TRUSTED_PROXIES (a balancer in front of the instances); then the address that proxy saw,
 * from the `X-Forwarded-For` it added. Read from the right, past every trusted proxy: the addresses further left
 * are the client's to write, and a client could name anyone there.
 */
export function clientAddress(connection: string, forwardedFor: string | null, trusted: ReadonlySet<string>): string {
  const peer = unmapped(connection);
  if (!forwardedFor || !trusted.has(peer)) return peer;
  const hops = forwardedFor.split(',').map((hop) => unmapped(hop.trim())).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i])) return hops[i];
  return hops[0] ?? peer;
}

/** `::ffff:127.0.0.1` (an IPv4 client of a dual-stack socket) is `127.0.0.1`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
