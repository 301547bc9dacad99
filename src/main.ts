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
import { isLoopbackBind } from './security/hosts.ts';
import { WEBSOCKET_PATH } from './ws/endpoint.ts';
import { serveApp } from './ws/serve.ts';

/** A server that cannot start says why and what to do in one line, and exits 1: no stack trace to read through. */
function exitWith(error: unknown): never {
  log.error(error instanceof Error ? error.message : String(error));
  log.debug('startup failure', { stack: (error as Error)?.stack });
  process.exit(1);
}

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (error) {
    return exitWith(error);
  }
})();
const args = process.argv.slice(2);
const mode = nativeMode(args);
if (mode === 'install') process.exit(await installNativeHost(config, args));

const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl, busyTimeoutMs: config.storeBusyTimeoutMs }).catch((error) => {
  // A host that cannot open the store (damaged, locked past the timeout) serves without it (its types answer
  // `backend_unavailable`) rather than dying unexplained to the extension.
  if (mode !== 'host') exitWith(error);
  log.warn(`native host running without the store: ${(error as Error).message}`);
  return undefined;
});
const app = createApp(config, { store });
if (mode === 'host') process.exit(await runNativeHost({ config, app, args, close: async () => store?.close() }));
// The peer processes load before the port opens, so the first offer does not wait for them.
await app.peerProcesses?.start();
const server = serveApp(app, { hostname: config.host, port: config.port });
await server.ready();
log.info(`tabagent-webrtc listening on http://${config.host}:${config.port}`, { trpc: '/trpc', rest: '/v1/webrtc/', websocket: WEBSOCKET_PATH, store: store?.kind });
if (!isLoopbackBind(config.host)) {
  const names = config.allowedHosts.includes('*') ? 'any' : ['localhost', 'IP addresses', ...config.allowedHosts].join(', ');
  log.info(`reachable beyond this machine; Host names served: ${names} (TABAGENT_ALLOWED_HOSTS)`);
  if (config.apiKeys.length + config.adminKeys.length === 0) log.warn('no API keys: anyone who reaches this address can use the server (TABAGENT_API_KEYS)');
}

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
