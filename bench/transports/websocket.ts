import { WebSocketClient } from '../../src/transports/websocket/client.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

/** `GET /v1/ws` on the same server: the data channel's frames, one socket per session. */
export function websocketTransport(server: BenchServer): Transport {
  return {
    key: 'websocket',
    label: 'WebSocket',
    transferNote: '`echo` with a binary attachment as one binary ENVELOPE message each way',
    async open(): Promise<BenchSession> {
      const client = await WebSocketClient.connect(server.wsUrl);
      const request = async () => {
        const { frame } = await client.request({ action: 'health' });
        if (frame.type !== 'health') throw new Error(`health answered ${JSON.stringify(frame)}`);
      };
      await request();
      return {
        request,
        async transfer(payload) {
          const { attachment } = await client.request({ action: 'echo' }, { attachment: payload });
          if (attachment?.length !== payload.length) throw new Error('WebSocket echo lost bytes');
        },
        close: async () => void (await client.close()),
      };
    },
    cpuMs: () => server.cpuMs(),
    memory: () => server.memory(),
  };
}
