import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { randomBytes } from 'node:crypto';
import { DEFAULT_DATA_DIR } from './paths.ts';

const MiB = 1024 * 1024;

/** What a node id may be (src/cluster/): short, lowercase, safe in ids, URLs and logs. */
export const NODE_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** A node id for an instance that was given none. */
const randomNodeId = () => randomBytes(4).toString('hex');

/** Shorter API keys are refused at startup: a key is a password nobody types, so it can be long. */
export const MIN_KEY_LENGTH = 16;

/** What TABAGENT_ALLOWED_HOSTS entries look like: `*`, a name, or `.` and a domain (src/security/hosts.ts). */
const HOST_ENTRY = /^(\*|\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i;

const iceServer = z.object({
  urls: z.union([z.string(), z.array(z.string())]),
  username: z.string().optional(),
  credential: z.string().optional(),
});
export type IceServer = z.infer<typeof iceServer>;

/**
 * The WebRTC stacks the server's peers can run on (src/peer/backend.ts loads them): `wrtc` (@roamhq/wrtc, Chrome's
 * libwebrtc) or `node-datachannel` (libdatachannel). Both come prebuilt from the npm registry.
 */
export const PEER_BACKENDS = ['wrtc', 'node-datachannel'] as const;
export type PeerBackend = (typeof PEER_BACKENDS)[number];

/** The server's settings. Every field has a default; `loadConfig` reads them from the environment. */
export const configSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  /** This instance's name among several (src/cluster/): it starts every session id and resume token. */
  nodeId: z.string().regex(NODE_ID, 'must be 1 to 32 lowercase letters, digits or dashes').default(randomNodeId),
  /** Where the other instances reach this one; default `http://<HOST>:<PORT>` (the address it listens on). */
  internalUrl: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * The secret instances share to forward signaling to each other; set, with DATABASE_URL, the instance joins the
   * cluster of those on that database (see docs/DEPLOYMENT.md).
   */
  clusterSecret: z.string().min(16, 'must be at least 16 characters').optional(),
  maxSessions: z.coerce.number().int().positive().default(100),
  maxSessionsPerIp: z.coerce.number().int().positive().default(5),
  /** A session with no signaling call and no data-channel message for this long is closed. */
  inactivityTimeoutMs: z.coerce.number().int().positive().default(5 * 60_000),
  cleanupIntervalMs: z.coerce.number().int().positive().default(30_000),
  /** How long an offer waits for its answer. */
  offerTtlMs: z.coerce.number().int().positive().default(60_000),
  /** Upper bound on waiting for the server's own ICE gathering before the offer goes out. */
  iceGatheringTimeoutMs: z.coerce.number().int().min(0).default(1_000),
  /** A peer whose connection reads `disconnected` this long is closed (ICE may recover before). */
  disconnectGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** A session whose peer dropped keeps its requests and answers this long, for the client to resume it; 0: never. */
  resumeGraceMs: z.coerce.number().int().min(0).default(60_000),
  /** Per session, the bytes of answers and stream chunks kept for a resume (the oldest go first). */
  resumeBufferBytes: z.coerce.number().int().positive().default(8 * MiB),
  /**
   * Processes the server's WebRTC peers run in, apart from the server: a native crash in the WebRTC stack then costs
   * a resume, not the server, for a pipe hop on every message. 0 (the default) runs them in the server's own
   * process: with wrtc's send and description races fixed, the churn soaks found no crash left to isolate, and the
   * hop cost about twice the server's CPU per request and three to four times the round trip's p99 (docs/SPEED.md).
   */
  peerProcesses: z.coerce.number().int().min(0).max(64).default(0),
  /**
   * File descriptors the peers of one process may hold (about 100 an offer not yet answered, 20 a connected peer);
   * past it new offers get 503 `server_busy`, before the process could fail with EMFILE. Default: the process's
   * open-file limit less 128 (unbounded where the limit cannot be read).
   */
  peerFdBudget: z.coerce.number().int().positive().optional(),
  /** A peer process silent this long (a ping unanswered) is killed and replaced; its sessions resume on the new one. */
  peerHeartbeatTimeoutMs: z.coerce.number().int().positive().default(10_000),
  /** The WebRTC stack the server's peers run on, wherever they run (docs/PEERS.md compares the two). */
  peerBackend: z.enum(PEER_BACKENDS).default('wrtc'),
  iceServers: z.array(iceServer).default([]),
  /** TURN servers handed out with ephemeral credentials from `turnSecret` (coturn's `use-auth-secret`). */
  turnUrls: z.array(z.string().regex(/^turns?:/, 'must be turn: or turns: URLs')).default([]),
  turnSecret: z.string().min(16, 'must be at least 16 characters').optional(),
  /** How long an ephemeral TURN credential is valid. */
  turnTtlS: z.coerce.number().int().positive().default(24 * 3600),
  /** New sessions per client address per minute (a resume is not a new session); 0: no limit. Burst: the same number. */
  sessionRatePerMinute: z.coerce.number().int().min(0).default(10),
  /** Messages per second on one session's data channels; 0: no limit. */
  messageRatePerSecond: z.coerce.number().int().min(0).default(100),
  /** Messages a session may send at once above that rate. */
  messageBurst: z.coerce.number().int().positive().default(200),
  /** Requests one session may have running at once (more get `rate_limited`). */
  maxInFlightPerSession: z.coerce.number().int().positive().default(1_000),
  /** Largest message, after reassembly, either way on a data channel. */
  maxMessageBytes: z.coerce.number().int().positive().default(64 * MiB),
  /** Largest signaling request body (an SDP is a few KiB). */
  maxBodyBytes: z.coerce.number().int().positive().default(1 * MiB),
  /** How long a request's headers and body may take to arrive; a slower client is cut off (408). */
  bodyTimeoutMs: z.coerce.number().int().positive().default(30_000),
  /** On shutdown, how long in-flight requests may run before they are cancelled. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /**
   * Proxies (balancers) whose `X-Forwarded-For` names the client, by address: the per-address limits then count
   * the client's address, not the proxy's (src/security/client-address.ts).
   */
  trustedProxies: z.array(z.union([z.ipv4(), z.ipv6()], 'each entry must be an IP address')).default([]),
  /** Browser origins allowed besides `chrome-extension://` ones (listing some of those allows only them); `*`: any. */
  allowedOrigins: z.array(z.string()).default([]),
  /**
   * Host names the server answers to besides `localhost` and IP addresses (src/security/hosts.ts): a LAN name, a
   * reverse proxy's public name, `.example.com` for a domain and its subdomains; `*`: any (a proxy checks them).
   */
  allowedHosts: z.array(z.string().regex(HOST_ENTRY, 'each entry must be a host name without port, .domain, or *')).default([]),
  /**
   * The inference server's root URL (OpenAI-compatible; Ollama, llama-server, vLLM, LM Studio, OpenAI). A URL ending
   * in `/v1` works too. Unset: a local Ollama on its default port is used when it answers. `off`: no upstream.
   */
  upstreamUrl: z.union([z.url({ protocol: /^https?$/ }), z.literal('off')]).optional(),
  upstreamApiKey: z.string().min(1).optional(),
  /** How long the upstream may stay silent (before its answer starts, or between streamed chunks). */
  upstreamIdleTimeoutMs: z.coerce.number().int().positive().default(120_000),
  /** Where the server keeps its files: the embedded store (`store.sqlite`: history, documents, settings), the native socket. */
  dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
  /** How long the embedded store waits for another process's write lock before it counts as locked. */
  storeBusyTimeoutMs: z.coerce.number().int().positive().default(10_000),
  /** The Unix socket native messaging hosts relay to; default `<dataDir>/native.sock`. */
  nativeSocket: z.string().min(1).optional(),
  /** Stop after this long with no session, socket, native port or request (a server the native host started); 0: never. */
  exitWhenIdleMs: z.coerce.number().int().min(0).default(0),
  /** A PostgreSQL server to keep them in instead (several instances can share it). */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL (unset it to use the embedded store)').optional(),
  /** The inference backend's embedding model for documents and search; unset: the hashed model. */
  embeddingModel: z.string().min(1).optional(),
  /** The embedded engine's GGUF files, one model each (id: the file name without `.gguf`); default `<dataDir>/models`. */
  modelsDir: z.string().min(1).optional(),
  /** Seconds an idle model of the embedded engine stays loaded (a request's `keep_alive` overrides it); negative: forever. */
  modelTtlS: z.coerce.number().default(300),
  /** Tokens a model of the embedded engine sees at once, capped at what it was trained for. */
  contextLength: z.coerce.number().int().min(64).default(4096),
  /** Generations one loaded model runs at once (each holds its own context); more wait their turn. */
  modelParallel: z.coerce.number().int().min(1).max(64).default(1),
  /** Memory the embedded engine's models may take together; past it the least recently used go. Default: what is free. */
  modelMemoryBytes: z.coerce.number().int().positive().optional(),
  /** Map GGUF files instead of reading them in: loads at once, but reports no progress and pays on first use. */
  modelMmap: z.enum(['on', 'off']).default('off'),
  /** CPU threads per generation; default half the cores (llama.cpp slows down badly on cores shared with the server). */
  llamaThreads: z.coerce.number().int().min(1).max(256).optional(),
  /** `auto` uses a GPU build where one is installed and works (docs/INFERENCE.md, "GPU builds"); `off`: CPU only. */
  llamaGpu: z.enum(['auto', 'off', 'cuda', 'vulkan', 'metal']).default('auto'),
  /** Where `pull_model` finds `owner/repo/file.gguf` (Hugging Face's layout: `<hub>/<owner>/<repo>/resolve/main/<file>`). */
  modelHubUrl: z.url({ protocol: /^https?$/ }).default('https://huggingface.co'),
  /**
   * Extensions that may start the native messaging host, written into its manifest by `--install-native-host`.
   * Exactly Chrome's form, `chrome-extension://<32-letter id>/`: Chrome accepts no wildcards there.
   */
  nativeAllowedOrigins: z
    .array(z.string().regex(/^chrome-extension:\/\/[a-p]{32}\/$/, 'each origin must be chrome-extension://<32-letter extension id>/'))
    .default([]),
  /** API keys clients must send as `Authorization: Bearer <key>`; none: no authentication (docs/SECURITY.md). */
  apiKeys: z.array(z.string().min(MIN_KEY_LENGTH, `each key must be at least ${MIN_KEY_LENGTH} characters`)).default([]),
  /** A file of more keys, one per line, read once at startup. */
  apiKeysFile: z.string().min(1).optional(),
  /** Keys that may also change what every caller shares (server params, models); they need not be in `apiKeys`. */
  adminKeys: z.array(z.string().min(MIN_KEY_LENGTH, `each key must be at least ${MIN_KEY_LENGTH} characters`)).default([]),
}).superRefine((config, context) => {
  if (config.clusterSecret && !config.databaseUrl) {
    context.addIssue({ code: 'custom', path: ['clusterSecret'], message: 'needs DATABASE_URL: the instances of a cluster share a PostgreSQL server' });
  }
  if (config.turnUrls.length > 0 && !config.turnSecret) {
    context.addIssue({ code: 'custom', path: ['turnSecret'], message: 'is required with TABAGENT_TURN_URLS (the TURN server\'s shared secret)' });
  }
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Environment variable of each setting: the one place that names them (docs/CONFIGURATION.md's table follows it). */
export const ENV_VARS = {
  host: 'HOST',
  port: 'PORT',
  nodeId: 'TABAGENT_NODE_ID',
  internalUrl: 'TABAGENT_INTERNAL_URL',
  clusterSecret: 'TABAGENT_CLUSTER_SECRET',
  maxSessions: 'TABAGENT_MAX_SESSIONS',
  maxSessionsPerIp: 'TABAGENT_MAX_SESSIONS_PER_IP',
  inactivityTimeoutMs: 'TABAGENT_INACTIVITY_TIMEOUT_MS',
  cleanupIntervalMs: 'TABAGENT_CLEANUP_INTERVAL_MS',
  offerTtlMs: 'TABAGENT_OFFER_TTL_MS',
  iceGatheringTimeoutMs: 'TABAGENT_ICE_GATHERING_TIMEOUT_MS',
  disconnectGraceMs: 'TABAGENT_DISCONNECT_GRACE_MS',
  resumeGraceMs: 'TABAGENT_RESUME_GRACE_MS',
  resumeBufferBytes: 'TABAGENT_RESUME_BUFFER_BYTES',
  peerProcesses: 'TABAGENT_PEER_PROCESSES',
  peerFdBudget: 'TABAGENT_PEER_FD_BUDGET',
  peerHeartbeatTimeoutMs: 'TABAGENT_PEER_HEARTBEAT_TIMEOUT_MS',
  peerBackend: 'TABAGENT_PEER_BACKEND',
  iceServers: 'TABAGENT_ICE_SERVERS',
  turnUrls: 'TABAGENT_TURN_URLS',
  turnSecret: 'TABAGENT_TURN_SECRET',
  turnTtlS: 'TABAGENT_TURN_TTL_S',
  sessionRatePerMinute: 'TABAGENT_SESSION_RATE_PER_MINUTE',
  messageRatePerSecond: 'TABAGENT_MESSAGE_RATE_PER_SECOND',
  messageBurst: 'TABAGENT_MESSAGE_BURST',
  maxInFlightPerSession: 'TABAGENT_MAX_IN_FLIGHT_PER_SESSION',
  maxMessageBytes: 'TABAGENT_MAX_MESSAGE_BYTES',
  maxBodyBytes: 'TABAGENT_MAX_BODY_BYTES',
  bodyTimeoutMs: 'TABAGENT_BODY_TIMEOUT_MS',
  shutdownGraceMs: 'TABAGENT_SHUTDOWN_GRACE_MS',
  allowedOrigins: 'TABAGENT_ALLOWED_ORIGINS',
  trustedProxies: 'TABAGENT_TRUSTED_PROXIES',
  allowedHosts: 'TABAGENT_ALLOWED_HOSTS',
  upstreamUrl: 'TABAGENT_UPSTREAM_URL',
  upstreamApiKey: 'TABAGENT_UPSTREAM_API_KEY',
  upstreamIdleTimeoutMs: 'TABAGENT_UPSTREAM_IDLE_TIMEOUT_MS',
  dataDir: 'TABAGENT_DATA_DIR',
  storeBusyTimeoutMs: 'TABAGENT_STORE_BUSY_TIMEOUT_MS',
  nativeSocket: 'TABAGENT_NATIVE_SOCKET',
  exitWhenIdleMs: 'TABAGENT_EXIT_WHEN_IDLE_MS',
  databaseUrl: 'DATABASE_URL',
  embeddingModel: 'TABAGENT_EMBEDDING_MODEL',
  modelsDir: 'TABAGENT_MODELS_DIR',
  modelTtlS: 'TABAGENT_MODEL_TTL_S',
  contextLength: 'TABAGENT_CONTEXT_LENGTH',
  modelParallel: 'TABAGENT_MODEL_PARALLEL',
  modelMemoryBytes: 'TABAGENT_MODEL_MEMORY_BYTES',
  modelMmap: 'TABAGENT_MODEL_MMAP',
  llamaThreads: 'TABAGENT_LLAMA_THREADS',
  llamaGpu: 'TABAGENT_LLAMA_GPU',
  modelHubUrl: 'TABAGENT_MODEL_HUB_URL',
  nativeAllowedOrigins: 'TABAGENT_NATIVE_ALLOWED_ORIGINS',
  apiKeys: 'TABAGENT_API_KEYS',
  apiKeysFile: 'TABAGENT_API_KEYS_FILE',
  adminKeys: 'TABAGENT_ADMIN_KEYS',
} as const satisfies Record<keyof Config, string>;

/** Parses list settings: ICE servers as JSON or comma-separated URLs, origins comma-separated. */
const fromText: Partial<Record<keyof Config, (text: string) => unknown>> = {
  iceServers: (text) => (text.trim().startsWith('[') ? JSON.parse(text) : splitList(text).map((urls) => ({ urls }))),
  allowedOrigins: splitList,
  trustedProxies: splitList,
  allowedHosts: splitList,
  turnUrls: splitList,
  nativeAllowedOrigins: splitList,
  apiKeys: splitList,
  adminKeys: splitList,
};

function splitList(text: string): string[] {
  return text.split(',').map((item) => item.trim()).filter(Boolean);
}

/** Builds the config from environment variables, then `overrides`. Errors name the variable to fix. */
export function loadConfig(env: Record<string, string | undefined> = {}, overrides: ConfigInput = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV_VARS) as [keyof Config, string][]) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    try {
      raw[key] = fromText[key] ? fromText[key](text) : text;
    } catch {
      throw new Error(`Invalid ${name}: cannot parse ${JSON.stringify(text)}`);
    }
  }
  const parsed = configSchema.safeParse({ ...raw, ...overrides });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue.path[0] as keyof Config;
    throw new Error(`Invalid ${ENV_VARS[key] ?? String(key)}: ${issue.message}`);
  }
  const config = parsed.data;
  if (config.apiKeysFile) config.apiKeys = [...config.apiKeys, ...readKeysFile(config.apiKeysFile)];
  return config;
}

/** The keys in `TABAGENT_API_KEYS_FILE`; a missing or empty file stops the start (auth was asked for). */
function readKeysFile(file: string): string[] {
  const name = ENV_VARS.apiKeysFile;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new Error(`Invalid ${name}: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`);
  }
  const keys = parseKeysFile(text);
  if (keys.length === 0) throw new Error(`Invalid ${name}: ${file} has no keys`);
  const short = keys.findIndex((key) => key.length < MIN_KEY_LENGTH);
  if (short >= 0) throw new Error(`Invalid ${name}: key ${short + 1} in ${file} is shorter than ${MIN_KEY_LENGTH} characters`);
  return keys;
}

/** A keys file: one key per line; blank lines and lines starting with `#` are ignored (a key may contain `#`). */
export function parseKeysFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}
