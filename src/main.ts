/**
 * The server entry: `npx tsx src/main.ts` (Node) or `deno task dev` (Deno). Reads config from the environment,
 * serves the fetch handler, shuts down gracefully on SIGINT/SIGTERM. `--native-host` serves the same app to Chrome
 * over native messaging instead, and `--install-native-host` registers that host (docs/NATIVE_MESSAGING.md).
 */
import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { runNativeHost } from './native/host.ts';
import { installNativeHost } from './native/install.ts';
import { nativeMode } from './native/mode.ts';
import { openStore } from './store/index.ts';
import { log } from './log.ts';
import { WEBSOCKET_PATH } from './ws/endpoint.ts';
import { serveApp } from './ws/serve.ts';

const config = loadConfig(process.env);
const args = process.argv.slice(2);
const mode = nativeMode(args);
if (mode === 'install') process.exit(await installNativeHost(config, args));

const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl }).catch((error) => {
  // Chrome starts a host per port and the embedded store takes one process: a host that cannot have it serves
  // without it (its types answer `backend_unavailable`) rather than dying unexplained to the extension.
  if (mode !== 'host') throw error;
  log.warn(`native host running without the store: ${(error as Error).message}`);
  return undefined;
});
const app = createApp(config, { store });
if (mode === 'host') process.exit(await runNativeHost({ config, app, args, close: async () => store?.close() }));
// The peer backend loads (in its peer processes, or in this one) before the port opens, so the first offer does
// not wait for it, and a backend that cannot load here stops the start, saying why.
await app.start();
const server = serveApp(app, { hostname: config.host, port: config.port });
await server.ready();
log.info(`tabagent-webrtc listening on http://${config.host}:${config.port}`, { trpc: '/trpc', rest: '/v1/webrtc/', websocket: WEBSOCKET_PATH, store: store?.kind });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return process.exit(1); // a second signal means now
  stopping = true;
  log.info(`${signal}: shutting down`, { grace_ms: config.shutdownGraceMs });
  await app.close();
  await server.close(true);
  await store?.close();
  log.info('stopped');
  // With its peers in this process (TABAGENT_PEER_PROCESSES=0), wrtc's native threads can keep the event loop alive
  // after every peer closed: leave explicitly. (`npm run soak` checks that it would leave by itself either way.)
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
