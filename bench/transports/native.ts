import { spawnNativeHost } from '../../src/native/client.ts';
import { procCpuMs, procRssBytes } from '../measure.ts';
import type { BenchSession, Transport } from './types.ts';

/** Up to Chrome's 64 MiB per message to the host: 32 MiB is about 43 MiB as base64 JSON. */
const PART_BYTES = 32 * 1024 * 1024;

/**
 * Chrome Native Messaging: one host process per session (Chrome starts one per `connectNative` port), spoken to
 * over its pipes as Chrome would. Setup is the process start; CPU and memory are the host's own, from /proc.
 * The hosts run without a store, as the bench's server does: DATABASE_URL names a closed loopback port, so each
 * host gives up on it at once (the embedded store, one process at a time, would go to the first host only).
 */
export function nativeTransport(): Transport<BenchSession & { pid: number }> {
  const env = { TABAGENT_MESSAGE_RATE_PER_SECOND: '0', TABAGENT_UPSTREAM_URL: 'off', LOG_LEVEL: 'error', DATABASE_URL: 'postgres://bench@127.0.0.1:9/none' };
  return {
    key: 'native',
    label: 'native host',
    transferNote: 'base64 in JSON `echo` data, in two requests of 32 MiB (about 43 MiB each as JSON, under Chrome\'s 64 MiB per message to the host); answers come back in the host\'s 1 MiB fragments',
    sessionCounts: [1, 10],
    sessionNote: 'a process per session: 100 host processes would hold about 16 GB and take minutes to start here',
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
    cpuMs: async (session) => procCpuMs(session.pid),
    memory: async (sessions) => ({ rssBytes: sessions.reduce((sum, session) => sum + procRssBytes(session.pid), 0) }),
  };
}
