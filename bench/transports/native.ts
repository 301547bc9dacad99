import { spawnNativeHost } from '../../src/transports/native/client.ts';
import { procCpuMs, procRssBytes } from '../measure.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

/** Up to Chrome's 64 MiB per message to the host: 32 MiB is about 43 MiB as base64 JSON. */
const PART_BYTES = 32 * 1024 * 1024;

/**
 * Chrome Native Messaging: one host process per session (Chrome starts one per `connectNative` port), spoken to
 * over its pipes as Chrome would, relaying to the bench's server. Setup is the host's start to its first relayed
 * answer. CPU is the host's and the server's; memory is the hosts' (what each port costs the machine).
 */
export function nativeTransport(server: BenchServer): Transport<BenchSession & { pid: number }> {
  const env = { TABAGENT_DATA_DIR: server.dataDir, LOG_LEVEL: 'error' };
  return {
    key: 'native',
    label: 'native host',
    transferNote: 'base64 in JSON `echo` data, in two requests of 32 MiB (about 43 MiB each as JSON, under Chrome\'s 64 MiB per message to the host); answers come back in the server\'s 1 MiB fragments, through the host',
    sessionCounts: [1, 10],
    sessionNote: 'a host process per session, as Chrome starts one per port',
    async open() {
      const host = await spawnNativeHost({ env });
      const request = async () => {
        const answer = await host.request({ action: 'health' });
        if (answer.type !== 'health') throw new Error(`health answered ${JSON.stringify(answer)}`);
      };
      await request();
      return {
        pid: host.pid,
        request,
        async transfer(payload) {
          for (let offset = 0; offset < payload.length; offset += PART_BYTES) {
            const part = payload.subarray(offset, offset + PART_BYTES);
            const answer = await host.request({ action: 'echo', data: Buffer.from(part.buffer, part.byteOffset, part.length).toString('base64') });
            if (Buffer.from(String(answer.data), 'base64').length !== part.length) throw new Error('native echo lost bytes');
          }
        },
        close: async () => void (await host.close()),
      };
    },
    cpuMs: async (session) => procCpuMs(session.pid) + (await server.cpuMs()),
    memory: async (sessions) => ({ rssBytes: sessions.reduce((sum, session) => sum + procRssBytes(session.pid), 0) }),
  };
}
