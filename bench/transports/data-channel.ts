import wrtc from '@roamhq/wrtc';
import { connect } from '../../src/client/index.ts';
import type { PeerBackend } from '../../src/config.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

export interface DataChannelVariant {
  /**
   * Where the server's peers run, when the variant says: in its peer process (TABAGENT_PEER_PROCESSES=1) or in its
   * own (0). Unset: wherever the server's default puts them.
   */
  peerProcess?: boolean;
  /** The server's TABAGENT_PEER_BACKEND; wrtc by default. */
  backend?: PeerBackend;
}

/**
 * The key and label of a variant in the table: `data_channel` ("data channel") is the server's default
 * configuration; the others say what they set, e.g. `data_channel_ndc_in_process`, "node-datachannel, peers in the
 * server".
 */
export function variantName({ peerProcess, backend = 'wrtc' }: DataChannelVariant): { key: string; label: string } {
  const ndc = backend === 'node-datachannel';
  const where = peerProcess === undefined ? { key: '', label: '' }
    : peerProcess ? { key: '_peer_process', label: ', peer process' }
    : { key: '_in_process', label: ', peers in the server' };
  return { key: `data_channel${ndc ? '_ndc' : ''}${where.key}`, label: `${ndc ? 'node-datachannel' : 'data channel'}${where.label}` };
}

/** The server environment a variant is measured against. */
export function variantEnv({ peerProcess, backend }: DataChannelVariant): Record<string, string> {
  return {
    ...(peerProcess !== undefined && { TABAGENT_PEER_PROCESSES: peerProcess ? '1' : '0' }),
    ...(backend && { TABAGENT_PEER_BACKEND: backend }),
  };
}

/**
 * The product: the typed client's `connect()` (tRPC signaling, trickle ICE; the client is wrtc, as Chrome is
 * libwebrtc) against the real server, started with `variantEnv(variant)`.
 */
export function dataChannelTransport(server: BenchServer, variant: DataChannelVariant = {}): Transport {
  return {
    ...variantName(variant),
    transferNote: '`echo` with a binary attachment (ENVELOPE, fragmented to 256 KiB), answered with it',
    async open(): Promise<BenchSession> {
      const client = await connect({ url: server.url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
      const request = async () => void (await client.health());
      await request();
      return {
        request,
        async transfer(payload) {
          const { attachment } = await client.call('echo', {}, { attachment: payload });
          if (attachment?.length !== payload.length) throw new Error('data channel echo lost bytes');
        },
        close: () => client.close(),
      };
    },
    cpuMs: () => server.cpuMs(),
    memory: () => server.memory(),
  };
}
