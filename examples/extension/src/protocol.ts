/**
 * The messages between the popup (or any extension page) and the offscreen document, over a
 * `chrome.runtime.connect({ name: PORT_NAME })` port, and the one-shot messages to the service worker.
 * Everything here is JSON: ports serialize their messages.
 */
import type { Chunk } from '../../../src/client/index.ts';

export const PORT_NAME = 'tabagent';

/** The offscreen document's link to the server. */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Your own id for a request: any JSON string or number, unique among your port's requests in flight. */
export type RequestId = string | number;

export interface WireError {
  code: string;
  message: string;
}

/** popup → offscreen */
export type PortRequest =
  | { type: 'request'; id: RequestId; action: string; params?: Record<string, unknown>; stream?: boolean }
  | { type: 'cancel'; id: RequestId }
  | { type: 'reconnect' };

/** offscreen → popup */
export type PortMessage =
  | { type: 'chunk'; id: RequestId; chunk: Chunk }
  | { type: 'result'; id: RequestId; response: Record<string, unknown> }
  | { type: 'error'; id: RequestId | null; error: WireError }
  | { type: 'event'; name: 'model_loading_progress' | 'model_pull_progress'; data: Record<string, unknown> }
  | { type: 'connection'; state: ConnectionState };

/** One-shot messages to the service worker (`chrome.runtime.sendMessage`). */
export type WorkerMessage = { type: 'ensure-offscreen' } | { type: 'get-settings' };

export type EnsureOffscreenReply = { ok: true } | { ok: false; error: string };

export interface Settings {
  serverUrl: string;
  token?: string;
}

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8080';
