import type { IceServer, RtcConfig } from 'node-datachannel';

const DEFAULT_PORTS: Record<string, number> = { stun: 3478, stuns: 5349, turn: 3478, turns: 5349 };

/**
 * libdatachannel's configuration for a W3C RTCConfiguration. Its ICE servers are strings or
 * `{ hostname, port, username, password, relayType }`; TURN servers go as the latter, because our ephemeral
 * usernames (`<expiry>:<user>`, see ice-servers.ts) hold a colon that its `turn:user:pass@host` form cannot carry.
 * Negotiation is ours to start (the W3C order: createDataChannel, then createOffer, then setLocalDescription).
 */
export function nativeConfig(config: RTCConfiguration): RtcConfig {
  const iceServers = (config.iceServers ?? []).flatMap((server) =>
    (Array.isArray(server.urls) ? server.urls : [server.urls]).map((url) => nativeIceServer(url, server)),
  );
  return { iceServers, disableAutoNegotiation: true, ...(config.iceTransportPolicy === 'relay' && { iceTransportPolicy: 'relay' }) };
}

function nativeIceServer(url: string, server: RTCIceServer): string | IceServer {
  const match = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(url.trim());
  if (!match) throw new TypeError(`ICE server URL ${JSON.stringify(url)} is not stun:, stuns:, turn: or turns: host[:port]`);
  const [, scheme, host, port, transport] = match;
  const kind = scheme.toLowerCase();
  const hostname = host.replace(/^\[|\]$/g, '');
  if (kind.startsWith('stun')) return `${kind}:${host}:${port ?? DEFAULT_PORTS[kind]}`;
  return {
    hostname,
    port: Number(port ?? DEFAULT_PORTS[kind]),
    username: server.username,
    password: typeof server.credential === 'string' ? server.credential : undefined,
    relayType: kind === 'turns' ? 'TurnTls' : transport?.toLowerCase() === 'tcp' ? 'TurnTcp' : 'TurnUdp',
  };
}
