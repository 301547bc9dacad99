/**
 * The offscreen document: holds the extension's one TabAgentClient and serves extension pages over
 * `chrome.runtime.connect({ name: 'tabagent' })` ports (protocol in ./protocol.ts and the README).
 */
import { connect, type Action, type StreamingAction, type TabAgentClient } from '../../../src/client/index.ts';
import {
  DEFAULT_SERVER_URL,
  PORT_NAME,
  type ConnectionState,
  type PortMessage,
  type PortRequest,
  type RequestId,
  type Settings,
  type WireError,
} from './protocol.ts';

const RETRY_MS = 2_000;
const PUSHED_EVENTS = ['model_loading_progress', 'model_pull_progress'] as const;

let client: TabAgentClient | undefined;
let state: ConnectionState = 'connecting';
/** Bumped by every (re)connect: callbacks of an older attempt or client see a stale number and do nothing. */
let generation = 0;
let retryTimer: ReturnType<typeof setTimeout> | undefined;

/** Per port: the caller's id → the server-side request id, for `cancel`. */
const ports = new Map<chrome.runtime.Port, Map<RequestId, string>>();

function post(port: chrome.runtime.Port, message: PortMessage): void {
  try {
    port.postMessage(message);
  } catch {
    // The page went away mid-answer; its onDisconnect cleans up.
  }
}

function broadcast(message: PortMessage): void {
  for (const port of ports.keys()) post(port, message);
}

function setState(next: ConnectionState): void {
  if (next === state) return;
  state = next;
  broadcast({ type: 'connection', state });
}

function wireError(error: unknown): WireError {
  if (error && typeof error === 'object' && 'message' in error) {
    const { code, message } = error as { code?: unknown; message: unknown };
    return { code: typeof code === 'string' ? code : 'internal', message: String(message) };
  }
  return { code: 'internal', message: String(error) };
}

/** Settings live in chrome.storage.local, which an offscreen document cannot read: the service worker answers. */
async function readSettings(): Promise<Settings> {
  const settings = (await chrome.runtime.sendMessage({ type: 'get-settings' }).catch(() => undefined)) as Settings | undefined;
  return settings?.serverUrl ? settings : { serverUrl: DEFAULT_SERVER_URL };
}

function scheduleRetry(forGeneration: number): void {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (forGeneration === generation) void start();
  }, RETRY_MS);
}

/** Closes the current client (if any) and connects again with freshly read settings. */
async function start(): Promise<void> {
  const mine = ++generation;
  clearTimeout(retryTimer);
  const previous = client;
  client = undefined;
  previous?.close().catch(() => {});
  setState('connecting');
  try {
    const { serverUrl, token } = await readSettings();
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const next = await connect({ url: serverUrl, headers: () => headers });
    if (mine !== generation) {
      next.close().catch(() => {});
      return;
    }
    client = next;
    for (const name of PUSHED_EVENTS) next.on(name, (data) => broadcast({ type: 'event', name, data }));
    next.on('connection', (connection) => {
      if (mine !== generation) return;
      setState(connection);
      if (connection === 'closed') {
        client = undefined;
        scheduleRetry(mine); // the client gave up on this session: start a new one
      }
    });
    setState('connected');
  } catch (error) {
    if (mine !== generation) return;
    setState('closed');
    broadcast({ type: 'error', id: null, error: wireError(error) });
    scheduleRetry(mine);
  }
}

async function serve(port: chrome.runtime.Port, message: Extract<PortRequest, { type: 'request' }>): Promise<void> {
  const { id, action, params, stream } = message;
  const current = client;
  if (!current) {
    post(port, { type: 'error', id, error: { code: 'not_connected', message: `Not connected to the server (${state})` } });
    return;
  }
  const inFlight = ports.get(port);
  if (!inFlight || inFlight.has(id)) {
    post(port, { type: 'error', id, error: { code: 'conflict', message: `Request id ${JSON.stringify(id)} is already in flight` } });
    return;
  }
  try {
    if (stream) {
      const chunks = current.stream(action as StreamingAction, params as never);
      inFlight.set(id, chunks.requestId);
      for await (const chunk of chunks) post(port, { type: 'chunk', id, chunk });
      post(port, { type: 'result', id, response: (await chunks.result) as Record<string, unknown> });
    } else {
      const requestId = `ext-${crypto.randomUUID()}`;
      inFlight.set(id, requestId);
      const response = await current.request(action as Action, params as never, { requestId });
      post(port, { type: 'result', id, response: response as Record<string, unknown> });
    }
  } catch (error) {
    post(port, { type: 'error', id, error: wireError(error) });
  } finally {
    inFlight.delete(id);
  }
}

function cancel(requestId: string): void {
  client?.cancel(requestId).catch(() => {}); // the request itself then answers `cancelled`
}

chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== PORT_NAME) return;
  const inFlight = new Map<RequestId, string>();
  ports.set(port, inFlight);
  post(port, { type: 'connection', state });
  port.onMessage.addListener((message: PortRequest) => {
    switch (message?.type) {
      case 'request':
        void serve(port, message);
        return;
      case 'cancel': {
        const requestId = inFlight.get(message.id);
        if (requestId) cancel(requestId);
        return;
      }
      case 'reconnect':
        void start();
        return;
    }
  });
  port.onDisconnect.addListener(() => {
    ports.delete(port);
    for (const requestId of inFlight.values()) cancel(requestId); // nobody is left to read these answers
  });
});

void start();
