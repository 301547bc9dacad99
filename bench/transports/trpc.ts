import http from 'node:http';
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../routers/index.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

/**
 * `rpc.health` over tRPC's httpLink. HTTP has no session: here a session is one keep-alive connection (its own
 * agent), so setup is a new TCP connection to the first answer, and idle memory is per open connection.
 */
export function trpcTransport(server: BenchServer, maxMessageBytes: number): Transport {
  return {
    key: 'trpc',
    label: 'tRPC HTTP',
    transferNote: `64 MiB as base64 is 85 MiB of JSON, over the ${maxMessageBytes / 2 ** 20} MiB body cap of rpc.* (maxMessageBytes); tRPC has no binary body`,
    async open(): Promise<BenchSession> {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const trpc = createTRPCClient<AppRouter>({
        links: [httpLink({ url: `${server.url}/trpc`, transformer: superjson, fetch: fetchOver(agent) })],
      });
      const request = async () => void (await trpc.rpc.health.query());
      await request();
      return { request, close: async () => agent.destroy() };
    },
    cpuMs: () => server.cpuMs(),
    memory: () => server.memory(),
  };
}

/** A `fetch` for httpLink on node:http with the given agent (the global fetch pools connections on its own). */
function fetchOver(agent: http.Agent) {
  return (url: URL | string | Request, init?: RequestInit): Promise<Response> =>
    new Promise((resolve, reject) => {
      const request = http.request(String(url), { method: init?.method ?? 'GET', headers: init?.headers as Record<string, string>, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(response.headers)) if (typeof value === 'string') headers.set(name, value);
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers }));
        });
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(init?.body as string | undefined);
    });
}
