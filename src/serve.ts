/**
 * Serves the app with srvx, with crossws mounted for `GET /v1/ws`: one call for every place that listens
 * (`src/main.ts`, tests, benchmarks). crossws's `serve` is srvx's, plus the upgrade: on Node it takes the HTTP
 * server's `upgrade` event (ws under the hood), on Deno it calls `Deno.upgradeWebSocket`. Either way it asks
 * `app.fetch` first, so routing and the origin check are the app's, as for every other request.
 */
import { serve } from 'crossws/server';
import type { Server } from 'srvx';
import type { App } from './app.ts';
import { chooseSubprotocol } from './transports/websocket/subprotocol.ts';

export interface ListenOptions {
  hostname: string;
  /** 0 picks a free port (`server.url` tells which). */
  port: number;
}

export function serveApp(app: App, { hostname, port }: ListenOptions): Server {
  const requestTimeout = app.config.bodyTimeoutMs;
  return serve({
    hostname,
    port,
    silent: true,
    // Node cuts off a client whose headers and body have not all arrived in time (408, then closes), so slow
    // connections cannot hold the server's sockets; it looks for them every `connectionsCheckingInterval`.
    node: { requestTimeout, headersTimeout: requestTimeout, connectionsCheckingInterval: Math.min(1_000, requestTimeout) },
    // The caller owns shutdown (src/main.ts: SIGINT/SIGTERM, then app.close()).
    gracefulShutdown: false,
    fetch: (request) => app.fetch(request, { ip: request.ip }),
    websocket: {
      // No hooks here: crossws resolves them per upgrade from app.fetch (see endpoint.ts).
      options: {
        node: { serverOptions: { maxPayload: app.websockets.maxReadBytes }, handleProtocols: chooseSubprotocol },
        deno: { handleProtocols: chooseSubprotocol },
      },
    },
  });
}
