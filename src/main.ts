/**
 * The server entry: `npx tsx src/main.ts` (Node) or `deno task dev` (Deno). Reads config from the environment,
 * serves the fetch handler, shuts down gracefully on SIGINT/SIGTERM.
 */
import { serve } from 'srvx';
import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { openStore } from './store/index.ts';
import { log } from './log.ts';

const config = loadConfig(process.env);
const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
const app = createApp(config, { store });
const server = serve({
  hostname: config.host,
  port: config.port,
  silent: true,
  gracefulShutdown: false,
  fetch: (request) => app.fetch(request, { ip: request.ip }),
});
await server.ready();
log.info(`tabagent-webrtc listening on http://${config.host}:${config.port}`, { trpc: '/trpc', rest: '/v1/webrtc/', store: store.kind });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return process.exit(1); // a second signal means now
  stopping = true;
  log.info(`${signal}: shutting down`, { grace_ms: config.shutdownGraceMs });
  await app.close();
  await server.close(true);
  await store.close();
  log.info('stopped');
  // wrtc's native threads can keep the event loop alive after every peer is closed: leave explicitly.
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
