import wrtc from '@roamhq/wrtc';
import { connect } from '../../src/client/index.ts';
import type { PeerBackend } from '../../src/config.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

export interface DataChannelVariant {
  /** The server's peers run in its own process (TABAGENT_PEER_PROCESSES=0), not in its peer process. */
  inProcess?: boolean;
  /** The server's TABAGENT_PEER_BACKEND; wrtc by default. */
  backend?: PeerBackend;
}

/** The key and label of a variant in the table, e.g. `data_channel_ndc_in_process`, "node-datachannel, peers in the server". */
export function variantName({ inProcess = false, backend = 'wrtc' }: DataChannelVariant): { key: string; label: string } {
  const ndc = backend === 'node-datachannel';
  return {
    key: `data_channel${ndc ? '_ndc' : ''}${inProcess ? '_in_process' : ''}`,
    label: `${ndc ? 'node-datachannel' : 'data channel'}${inProcess ? ', peers in the server' : ''}`,
  };
}

/**
 * The product: the typed client's `connect()` (tRPC signaling, trickle ICE; the client is wrtc, as Chrome is
 * libwebrtc) against the real server, whose peers run in its peer process or, for `inProcess`, in its own.
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
