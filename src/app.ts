import { TRPCError } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { appRouter } from '../routers/index.ts';
import { toTRPCError } from '../routers/trpc.ts';
import type { Config } from './config.ts';
import { Caller, Dispatcher, type Handlers } from './dispatch.ts';
import { createHandlers, memorySettings, paramsStore } from './engine/index.ts';
import { createInferenceEngine } from './engine/inference/index.ts';
import { Upstream } from './engine/inference/upstream.ts';
import { createKnowledgeEngine } from './engine/knowledge/index.ts';
import { AppError } from './errors.ts';
import { corsHeaders, isOriginAllowed, preflightHeaders } from './http/cors.ts';
import { errorResponse, json } from './http/json.ts';
import { limitBody, limitNesting } from './http/limit.ts';
import { handleRest, REST_PREFIX } from './http/rest.ts';
import { loadPeerFactory } from './peer/backend.ts';
import { PeerCount } from './peer/count.ts';
import type { PeerFactory } from './peer/factory.ts';
import { PeerProcessPool } from './peer/process/pool.ts';
import { MAX_NESTING_DEPTH } from './protocol/frames.ts';
import { ApiKeys } from './security/auth.ts';
import { SessionRate } from './security/rate-limit.ts';
import { SessionManager } from './session/manager.ts';
import { Signaling } from './signaling.ts';
import { Stats } from './stats.ts';
import type { Store } from './store/types.ts';
import { WEBSOCKET_PATH, WebSocketEndpoint } from './ws/endpoint.ts';
import { authorizationFromSubprotocols } from './ws/subprotocol.ts';

export const VERSION = '0.1.0';
/** A tRPC body's nesting bound: a request's own (MAX_NESTING_DEPTH) plus room for the batch and superjson wrappers. */
const MAX_BODY_DEPTH = MAX_NESTING_DEPTH + 8;

export interface AppDeps {
  /**
   * Makes RTCPeerConnections; by default the `peerBackend`'s, in peer processes (`peerProcesses`) or in this one
   * (loaded by `start()`).
   */
  createPeer?: PeerFactory;
  /**
   * Handlers that replace the built-in ones per request type (the inference engine is built in, from the config;
   * types no engine serves answer `backend_unavailable`).
   */
  engines?: Partial<Handlers>;
  /**
   * The persistent store (`openStore`): settings, history, documents. Without one, settings live in memory and the
   * knowledge types answer `backend_unavailable`. The caller opens and closes it.
   */
  store?: Store;
}

export interface App {
  /**
   * Loads the peer backend before the first offer: starts the peer processes, or loads it into this process when
   * `peerProcesses` is 0. Rejects, saying why and what to do, when the backend cannot load here.
   */
  start(): Promise<void>;
  /** The whole server as a fetch handler: `/trpc/*`, `/v1/webrtc/*`, `/v1/ws`. `info.ip` is the client's address. */
  fetch(request: Request, info?: { ip?: string }): Promise<Response>;
  /** Graceful shutdown: tells every channel, lets in-flight requests finish within the grace, closes every peer. */
  close(graceMs?: number): Promise<void>;
  readonly sessions: SessionManager;
  /** WebSocket sockets (`GET /v1/ws`; mounted by `serveApp` in src/ws/serve.ts). */
  readonly websockets: WebSocketEndpoint;
  readonly dispatcher: Dispatcher;
  readonly stats: Stats;
  /** The server's WebRTC peers: open, and not yet collected (each holds native threads until then). */
  readonly peers: PeerCount;
  /** The processes the peers run in; none when they run in this process. */
  readonly peerProcesses: PeerProcessPool | undefined;
}

/** Builds the server from its config; knows no runtime (main.ts serves it on Node or Deno). */
export function createApp(config: Config, deps: AppDeps = {}): App {
  const stats = new Stats();
  const peers = new PeerCount();
  const settings = deps.store ?? memorySettings();
  const upstream = new Upstream({ url: config.upstreamUrl, apiKey: config.upstreamApiKey, idleTimeoutMs: config.upstreamIdleTimeoutMs });
  const params = paramsStore(settings);
  let closing: Promise<void> | undefined;
  let sessions: SessionManager;
  const dispatcher = new Dispatcher(
    createHandlers({
      server: {
        version: VERSION,
        stats,
        shuttingDown: () => closing !== undefined,
        sessions: () => sessions.summary(),
        inFlight: () => dispatcher.inFlightCount,
        peers: () => ({ open: peers.open, uncollected: peers.uncollected }),
      },
      params,
      engines: {
        ...createInferenceEngine({ upstream, settings, params }),
        ...(deps.store && createKnowledgeEngine({ store: deps.store, upstream, embeddingModel: config.embeddingModel })),
        ...deps.engines,
      },
    }),
    stats,
  );
  const sessionRate = new SessionRate(config.sessionRatePerMinute);
  const peerProcesses =
    deps.createPeer || config.peerProcesses === 0 ? undefined : new PeerProcessPool(config.peerProcesses, config.peerBackend);
  /** Peers in this process: the backend's factory once `start()` has loaded it. */
  let localPeers = deps.createPeer;
  const createPeer: PeerFactory = peerProcesses?.createPeer ?? ((rtcConfig) => {
    if (!localPeers) throw new Error(`The ${config.peerBackend} peer backend is not loaded: await app.start() before serving`);
    return localPeers(rtcConfig);
  });
  sessions = new SessionManager(config, { createPeer: peers.track(createPeer), dispatcher, stats, sessionRate });
  const signaling = new Signaling(sessions, config);
  const websockets = new WebSocketEndpoint(config, { dispatcher, stats, sessionRate });
  /** tRPC `rpc.*` callers, one per API key: `stop_generation` and `halt_status` see that key's requests only. */
  const rpcCallers = new Map<string, Caller>();
  const rpcCallerOf = (identity: string) => {
    let caller = rpcCallers.get(identity);
    if (!caller) rpcCallers.set(identity, (caller = new Caller(`rpc-${identity}`)));
    return caller;
  };
  const apiKeys = new ApiKeys(config.apiKeys);

  /**
   * Every route but `GET /` (and CORS preflights, answered before) needs the API key when keys are configured.
   * tRPC checks it in its context, so tRPC clients get a tRPC error (`appCode: 'unauthorized'`); SSE, which cannot
   * send headers, may carry it as connectionParams `{ authorization }`; a browser's WebSocket, as a subprotocol
   * (src/ws/subprotocol.ts). The rest check it here, before routing.
   */
  async function route(request: Request, ip: string): Promise<Response> {
    const path = new URL(request.url).pathname;
    const authorization = request.headers.get('authorization');
    if (path === '/' && request.method === 'GET') {
      return json({ name: 'tabagent-webrtc', version: VERSION, trpc: '/trpc', rest: REST_PREFIX, websocket: WEBSOCKET_PATH });
    }
    if (path === '/trpc' || path.startsWith('/trpc/')) {
      // Signaling bodies are small (an SDP is a few KiB); rpc.* calls may carry as much as a data-channel message.
      const signalingOnly = path.slice('/trpc/'.length).split(',').every((procedure) => procedure.startsWith('webrtc.'));
      const limit = signalingOnly ? config.maxBodyBytes : config.maxMessageBytes;
      const tooLarge = () => new TRPCError({ code: 'PAYLOAD_TOO_LARGE', message: `Body is larger than ${limit} bytes` });
      const tooDeep = () => new TRPCError({ code: 'BAD_REQUEST', message: `Body nests arrays or objects more than ${MAX_BODY_DEPTH} levels deep` });
      return fetchRequestHandler({
        endpoint: '/trpc',
        req: limitNesting(limitBody(request, limit, tooLarge), MAX_BODY_DEPTH, tooDeep),
        router: appRouter,
        createContext: ({ info }) => {
          let identity: string;
          try {
            identity = apiKeys.authenticate(authorization ?? info.connectionParams?.authorization);
          } catch (error) {
            throw toTRPCError(error as AppError);
          }
          return { ip, signaling: signaling.as(identity), dispatcher, rpcCaller: rpcCallerOf(identity) };
        },
      });
    }
    const identity = apiKeys.authenticate(
      authorization ?? (path === WEBSOCKET_PATH ? authorizationFromSubprotocols(request.headers.get('sec-websocket-protocol')) : null),
    );
    if (path.startsWith(REST_PREFIX)) return handleRest(request, path, ip, signaling.as(identity), config.maxBodyBytes);
    if (path === WEBSOCKET_PATH) return websockets.handle(request, ip);
    return errorResponse(new AppError('not_found', `No route ${request.method} ${path}`));
  }

  return {
    async start() {
      if (peerProcesses) await peerProcesses.start();
      else localPeers ??= await loadPeerFactory(config.peerBackend);
    },
    sessions,
    websockets,
    dispatcher,
    stats,
    peers,
    peerProcesses,
    async fetch(request, info = {}) {
      const origin = request.headers.get('origin');
      if (origin && !isOriginAllowed(origin, config.allowedOrigins)) {
        return errorResponse(new AppError('forbidden', `Origin ${origin} is not allowed; add it to TABAGENT_ALLOWED_ORIGINS`));
      }
      if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: origin ? preflightHeaders(origin) : {} });
      const response = await route(request, info.ip ?? 'unknown').catch(errorResponse);
      if (origin) for (const [name, value] of Object.entries(corsHeaders(origin))) response.headers.set(name, value);
      // A body refused for its size is left unread (see limit.ts), so its connection cannot carry another request:
      // kept alive, Node resets it under the client's next one. Closing it sends that request on a fresh one.
      if (response.status === 413) response.headers.set('connection', 'close');
      return response;
    },
    close(graceMs) {
      closing ??= Promise.all([
        sessions.shutdown(graceMs),
        websockets.shutdown(graceMs),
        // tRPC `rpc.*` calls: what outlives the grace is answered `shutting_down` too, before the process exits.
        dispatcher.drainOrCancel(graceMs ?? config.shutdownGraceMs, () => [...rpcCallers.values()]),
      ]).then(() => peerProcesses?.close());
      return closing;
    },
  };
}
