/**
 * The server entry: `npm start` (Node: `node --import tsx src/main.ts`) or `deno task dev` (Deno). Reads config
 * from the environment, serves the fetch handler and the native socket, shuts down gracefully on SIGINT/SIGTERM.
 * `--native-host` is the native messaging host instead, a relay to this server (src/transports/native/relay.ts), and
 * `--install-native-host` registers that host (docs/NATIVE_MESSAGING.md).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { createApp, type App } from './app.ts';
import { Cluster } from './cluster/index.ts';
import { loadConfig } from './config.ts';
import { installNativeHost } from './transports/native/install.ts';
import { nativeMode, STARTED_BY_HOST } from './transports/native/mode.ts';
import { runRelay } from './transports/native/relay.ts';
import { nativeSocketPath, serverPidPath } from './paths.ts';
import { openStore } from './store/index.ts';
import { log } from './log.ts';
import { isLoopbackBind } from './security/hosts.ts';
import { WEBSOCKET_PATH } from './transports/websocket/endpoint.ts';
import { serveApp } from './serve.ts';

const args = process.argv.slice(2);
const mode = nativeMode(args);
if (mode === 'host') process.exit(await runRelay());

const config = await orCannotStart(async () => loadConfig(process.env));
if (mode === 'install') process.exit(await installNativeHost(config, args));

const store = await orCannotStart(() =>
  openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl, busyTimeoutMs: config.storeBusyTimeoutMs }),
);
const { clusterSecret, databaseUrl } = config;
const cluster = clusterSecret && databaseUrl ? await orCannotStart(() => Cluster.open({ ...config, clusterSecret, databaseUrl })) : undefined;
const app = createApp(config, { store, cluster });
// The peer backend loads (in its peer processes, or in this one) before the port opens, so the first offer does
// not wait for it, and a backend that cannot load here stops the start, saying why.
await orCannotStart(() => app.start());
const server = serveApp(app, { hostname: config.host, port: config.port });
await orCannotStart(() => server.ready());
/**
 * One Ctrl-C can arrive more than once: the terminal signals the whole process group, and a parent (tsx, npm)
 * relays the signal it got to this process too. A repeat within this window is the same request to stop; a later
 * one asks to exit at once.
 */
const REPEAT_WINDOW_MS = 1_000;
let stoppingSince: number | undefined;
let nativeSocket: string | undefined;
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
nativeSocket = await listenNative(app);
// The other instances forward signaling here: the address given, else the one this server listens on.
await cluster?.join(config.internalUrl ?? new URL(server.url!).origin, () => app.sessions.size);
// The address as bound: PORT=0 takes a free port, which clients (and the log's readers) need to know.
log.info(`tabagent-webrtc listening on ${new URL(server.url!).origin}`, {
  node: config.nodeId,
  trpc: '/trpc',
  rest: '/v1/webrtc/',
  websocket: WEBSOCKET_PATH,
  native: nativeSocket,
  store: store.kind,
});
if (!isLoopbackBind(config.host)) {
  const names = config.allowedHosts.includes('*') ? 'any' : ['localhost', 'IP addresses', ...config.allowedHosts].join(', ');
  log.info(`reachable beyond this machine; Host names served: ${names} (TABAGENT_ALLOWED_HOSTS)`);
  if (config.apiKeys.length + config.adminKeys.length === 0) log.warn('no API keys: anyone who reaches this address can use the server (TABAGENT_API_KEYS)');
}
if (config.exitWhenIdleMs > 0) exitWhenIdle(app, config.exitWhenIdleMs);

async function stop(why: string): Promise<void> {
  if (stoppingSince !== undefined) {
    if (Date.now() - stoppingSince < REPEAT_WINDOW_MS) return;
    log.warn(`${why} again: exiting without waiting for requests in flight`);
    return process.exit(1);
  }
  stoppingSince = Date.now();
  log.info(`${why}: shutting down`, { grace_ms: config.shutdownGraceMs });
  await cluster?.drain();
  await app.close();
  await server.close(true);
  await cluster?.close();
  await store.close();
  if (nativeSocket) rmSync(serverPidPath(config.dataDir), { force: true });
  log.info('stopped');
  // With its peers in this process (TABAGENT_PEER_PROCESSES=0), wrtc's native threads can keep the event loop alive
  // after every peer closed: leave explicitly. (`npm run soak` checks that it would leave by itself either way.)
  process.exit(0);
}

/**
 * Opens the native socket and records this server's pid beside it; native messaging is then this server's. Without
 * it (another server holds the data directory's socket, or the runtime cannot listen there) the rest still serves.
 */
async function listenNative(app: App): Promise<string | undefined> {
  const socketPath = nativeSocketPath(config.dataDir, config.nativeSocket);
  try {
    if (!(await app.native.listen(socketPath))) {
      if (args.includes(STARTED_BY_HOST)) {
        log.info(`another server already serves native messaging on ${socketPath}`);
        await stop('not needed');
      }
      log.warn(`native messaging goes to the other server on ${socketPath}, not to this one`);
      return undefined;
    }
    writeFileSync(serverPidPath(config.dataDir), `${process.pid}\n`);
    return socketPath;
  } catch (error) {
    log.warn(`no native messaging: cannot listen on ${socketPath}`, { error });
    return undefined;
  }
}

/** Stops the server once nothing has used it for `idleMs`: a server the native host started goes away by itself. */
function exitWhenIdle(app: App, idleMs: number): void {
  let lastBusy = Date.now();
  const busy = () => app.sessions.size + app.websockets.size + app.native.size + app.dispatcher.inFlightCount > 0;
  setInterval(() => {
    if (busy()) lastBusy = Date.now();
    else if (Date.now() - lastBusy >= idleMs) void stop(`idle for ${Math.round(idleMs / 1000)} s`);
  }, Math.min(idleMs, 5_000)).unref();
}

/** Runs a start step; if it fails, says why in one line naming the cause and the fix (no stack trace) and exits 1. */
async function orCannotStart<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    log.error(`cannot start: ${startFailure(error)}`);
    log.debug('start failure', { stack: (error as Error)?.stack });
    process.exit(1);
  }
}

function startFailure(error: unknown): string {
  const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = `${address}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${where} is already in use (another tabagent-webrtc?): stop that, or set PORT to a free port`;
    case 'EACCES':
      return `no permission to listen on ${where}: set PORT above 1023`;
    case 'EADDRNOTAVAIL':
      return `${where} is not an address of this machine: set HOST to one of its addresses`;
  }
  return error instanceof Error ? error.message : String(error);
}
