import { TRPCError } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { appRouter } from '../routers/index.ts';
import { toTRPCError } from '../routers/trpc.ts';
import type { Config } from './config.ts';
import { Caller, Dispatcher } from './dispatch.ts';
import type { Handlers } from './protocol/handlers.ts';
import { createHandlers, memorySettings, paramsStore } from './engine/index.ts';
import { EmbeddedEngine } from './engine/inference/embedded/index.ts';
import { chooseBackend, createInferenceEngine } from './engine/inference/index.ts';
import { Upstream } from './engine/inference/upstream/client.ts';
import { createKnowledgeEngine } from './engine/knowledge/index.ts';
import { INTERNAL_PATH, type Cluster } from './cluster/index.ts';
import { AppError } from './errors.ts';
import { corsHeaders, isOriginAllowed, preflightHeaders } from './http/cors.ts';
import { errorResponse, json } from './http/json.ts';
import { limitBody, limitNesting } from './http/limit.ts';
import { handleRest, REST_PREFIX } from './signaling/rest.ts';
import { NativeEndpoint } from './transports/native/endpoint.ts';
import { loadPeerFactory } from './peer/backend.ts';
import { modelsDirPath } from './paths.ts';
import { PeerCount } from './peer/count.ts';
import type { PeerFactory } from './peer/factory.ts';
import { fdBudget, openFileLimit, withFdBudget } from './peer/fd-budget.ts';
import { PeerProcessPool } from './peer/process/pool.ts';
import { MAX_NESTING_DEPTH } from './protocol/frames.ts';
import { ApiKeys } from './security/auth.ts';
import type { Identity } from './protocol/handlers.ts';
import { clientAddress } from './security/client-address.ts';
import { HostAllowlist } from './security/hosts.ts';
import { SessionRate } from './security/rate-limit.ts';
import { SessionManager } from './session/manager.ts';
import { Signaling } from './signaling/service.ts';
import { Stats } from './stats.ts';
import type { Store } from './store/types.ts';
import { WEBSOCKET_PATH, WebSocketEndpoint } from './transports/websocket/endpoint.ts';
import { authorizationFromSubprotocols } from './transports/websocket/subprotocol.ts';

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
  /** With several instances on one database: the cluster this one joins (src/cluster/; main.ts opens it). */
  cluster?: Cluster;
}

export interface App {
  readonly config: Config;
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
  /** WebSocket sockets (`GET /v1/ws`; mounted by `serveApp` in src/serve.ts). */
  readonly websockets: WebSocketEndpoint;
  /** Native messaging ports that native hosts relay here (its socket is opened by main.ts). */
  readonly native: NativeEndpoint;
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
  const embedded = embeddedEngine(config);
  const backend = chooseBackend({ upstream, upstreamUrl: config.upstreamUrl, embedded });
  const params = paramsStore(settings);
  let closing: Promise<void> | undefined;
  let sessions: SessionManager;
  const dispatcher = new Dispatcher(
    createHandlers({
      server: {
        version: VERSION,
        nodeId: config.nodeId,
        stats,
        shuttingDown: () => closing !== undefined,
        sessions: () => sessions.summary(),
        inFlight: () => dispatcher.inFlightCount,
        peers: () => ({ open: peers.open, uncollected: peers.uncollected }),
      },
      params,
      inference: createInferenceEngine({ backend, settings, params }),
      knowledge: deps.store && createKnowledgeEngine({ store: deps.store, backend, embeddingModel: config.embeddingModel }),
      overrides: deps.engines,
    }),
    stats,
  );
  const sessionRate = new SessionRate(config.sessionRatePerMinute);
  const peerProcesses = deps.createPeer || config.peerProcesses === 0
    ? undefined
    : new PeerProcessPool(config.peerProcesses, {
        backend: config.peerBackend,
        fdBudget: config.peerFdBudget,
        heartbeatTimeoutMs: config.peerHeartbeatTimeoutMs,
      });
  /** Peers in this process: the backend's factory once `start()` has loaded it. */
  let localPeers = deps.createPeer;
  const createPeer: PeerFactory = peerProcesses?.createPeer ?? ((rtcConfig) => {
    if (!localPeers) throw new Error(`The ${config.peerBackend} peer backend is not loaded: await app.start() before serving`);
    return localPeers(rtcConfig);
  });
  sessions = new SessionManager(config, { createPeer: peers.track(createPeer), dispatcher, stats, sessionRate, cluster: deps.cluster?.hooks });
  const signaling = new Signaling(sessions, config, undefined, deps.cluster?.remote);
  const websockets = new WebSocketEndpoint(config, { dispatcher, stats, sessionRate });
  const native = new NativeEndpoint(config, { dispatcher, stats });
  /** tRPC `rpc.*` callers, one per API key: `stop_generation` and `halt_status` see that key's requests only. */
  const rpcCallers = new Map<string, Caller>();
  const rpcCallerOf = (identity: Identity | undefined) => {
    if (!identity) throw new AppError('unauthorized', 'Missing API key: send Authorization: Bearer <key>');
    let caller = rpcCallers.get(identity.id);
    if (!caller) rpcCallers.set(identity.id, (caller = new Caller(`rpc-${identity.id}`, identity)));
    return caller;
  };
  const apiKeys = new ApiKeys(config.apiKeys, config.adminKeys);
  const hosts = new HostAllowlist(config.allowedHosts);
  const trustedProxies = new Set(config.trustedProxies);

  /**
   * Every route but `GET /` and `GET /health` (and CORS preflights, answered before) needs the API key when keys
   * are configured, in the `Authorization` header, never in a URL. tRPC checks it in its context, so tRPC clients get a tRPC error
   * (`appCode: 'unauthorized'`); a lone `webrtc.events` subscription may come without it, as an EventSource cannot
   * send headers, and shows the session's events ticket instead; a browser's WebSocket offers it as a subprotocol
   * (src/transports/websocket/subprotocol.ts). The rest check it here, before routing.
   */
  async function route(request: Request, ip: string): Promise<Response> {
    const path = new URL(request.url).pathname;
    const authorization = request.headers.get('authorization');
    if (path === '/' && request.method === 'GET') {
      return json({ name: 'tabagent-webrtc', version: VERSION, trpc: '/trpc', rest: REST_PREFIX, websocket: WEBSOCKET_PATH });
    }
    // Readiness, for load balancers and scripts: the app exists only once its store is open; draining is 503.
    if (path === '/health' && request.method === 'GET') {
      return closing ? json({ status: 'shutting_down' }, 503) : json({ status: 'ok', version: VERSION });
    }
    // Another instance of the cluster, forwarding signaling for a session this one holds (its own secret, no key).
    if (deps.cluster && path === INTERNAL_PATH && request.method === 'POST') return deps.cluster.serve(request, signaling);
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
          let identity: Identity | undefined;
          try {
            if (apiKeys.required && info.connectionParams?.authorization !== undefined) throw keyInUrl();
            const following = info.calls.length === 1 && info.calls[0].path === 'webrtc.events';
            identity = following && !authorization && apiKeys.required ? undefined : apiKeys.authenticate(authorization);
          } catch (error) {
            throw toTRPCError(error as AppError);
          }
          return { ip, signaling: signaling.as(identity), dispatcher, rpcCaller: () => rpcCallerOf(identity) };
        },
      });
    }
    const identity = apiKeys.authenticate(
      authorization ?? (path === WEBSOCKET_PATH ? authorizationFromSubprotocols(request.headers.get('sec-websocket-protocol')) : null),
    );
    if (path.startsWith(REST_PREFIX)) return handleRest(request, path, ip, signaling.as(identity), config.maxBodyBytes);
    if (path === WEBSOCKET_PATH) return websockets.handle(request, ip, identity);
    return errorResponse(new AppError('not_found', `No route ${request.method} ${path}`));
  }

  return {
    config,
    async start() {
      if (peerProcesses) await peerProcesses.start();
      else localPeers ??= withFdBudget(await loadPeerFactory(config.peerBackend), fdBudget(openFileLimit(), config.peerFdBudget));
    },
    sessions,
    websockets,
    native,
    dispatcher,
    stats,
    peers,
    peerProcesses,
    async fetch(request, info = {}) {
      const host = request.headers.get('host');
      if (!hosts.allows(host)) {
        const named = JSON.stringify(host?.slice(0, 256));
        return errorResponse(new AppError('forbidden', `Host ${named} is not a name of this server; add it to TABAGENT_ALLOWED_HOSTS`));
      }
      const origin = request.headers.get('origin');
      if (origin && !isOriginAllowed(origin, config.allowedOrigins)) {
        return errorResponse(new AppError('forbidden', `Origin ${origin} is not allowed; add it to TABAGENT_ALLOWED_ORIGINS`));
      }
      if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: origin ? preflightHeaders(origin) : {} });
      const ip = clientAddress(info.ip ?? 'unknown', request.headers.get('x-forwarded-for'), trustedProxies);
      const response = await route(request, ip).catch(errorResponse);
      if (origin) for (const [name, value] of Object.entries(corsHeaders(origin))) response.headers.set(name, value);
      // A body refused for its size is left unread (see limit.ts), so its connection cannot carry another request:
      // kept alive, Node resets it under the client's next one. Closing it sends that request on a fresh one.
      if (response.status === 413) response.headers.set('connection', 'close');
      return response;
    },
    close(graceMs) {
      // Nothing starts during shutdown: no peer process, for a new peer or to replace one that died.
      peerProcesses?.drain();
      closing ??= Promise.all([
        sessions.shutdown(graceMs),
        websockets.shutdown(graceMs),
        native.shutdown(graceMs),
        // tRPC `rpc.*` calls: what outlives the grace is answered `shutting_down` too, before the process exits.
        dispatcher.drainOrCancel(graceMs ?? config.shutdownGraceMs, () => [...rpcCallers.values()]),
      ])
        .then(() => peerProcesses?.close())
        .then(() => embedded.close());
      return closing;
    },
  };
}

/** The engine that runs GGUF models in this process; it loads nothing until a request needs it. */
function embeddedEngine(config: Config): EmbeddedEngine {
  return new EmbeddedEngine({
    modelsDir: modelsDirPath(config.dataDir, config.modelsDir),
    contextLength: config.contextLength,
    parallel: config.modelParallel,
    ttlS: config.modelTtlS,
    memoryBytes: config.modelMemoryBytes,
    mmap: config.modelMmap === 'on',
    gpu: config.llamaGpu,
    threads: config.llamaThreads,
    hubUrl: config.modelHubUrl,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
  });
}

function keyInUrl(): AppError {
  return new AppError(
    'unauthorized',
    'API keys are not taken from URLs (connectionParams): send Authorization: Bearer <key>, or give webrtc.events the offer\'s eventsTicket',
  );
}
