import wrtc from '@roamhq/wrtc';
import { connect } from '../../src/client/index.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

/**
 * The product: the typed client's `connect()` (tRPC signaling, trickle ICE) against the real server, whose peers
 * run in its peer process; `inProcess` names a server whose peers run in its own process (TABAGENT_PEER_PROCESSES=0).
 */
export function dataChannelTransport(server: BenchServer, inProcess = false): Transport {
  return {
    key: inProcess ? 'data_channel_in_process' : 'data_channel',
    label: inProcess ? 'data channel, peers in the server' : 'data channel',
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
