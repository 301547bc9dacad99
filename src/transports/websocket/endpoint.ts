/**
 * `GET /v1/ws`: the data channel's protocol over a WebSocket, served by the same dispatcher. The route answers
 * inside `app.fetch`, so the origin allowlist and the other HTTP rules apply to the upgrade as to any request;
 * crossws (mounted by serve.ts) performs the upgrade and runs the hooks this route attaches to the request.
 */
import { setWebSocketHooks, type Peer } from 'crossws';
import type { Config } from '../../config.ts';
import type { Dispatcher } from '../../dispatch.ts';
import { AppError, toAppError } from '../../errors.ts';
import { json } from '../../http/json.ts';
import { log } from '../../log.ts';
import { errorFrame } from '../../protocol/frames.ts';
import { shutdownNotice } from '../../protocol/events.ts';
import type { Identity } from '../../protocol/handlers.ts';
import { MessageRate, type SessionRate } from '../../security/rate-limit.ts';
import type { Stats } from '../../stats.ts';
import { SocketConnection } from './connection.ts';

export const WEBSOCKET_PATH = '/v1/ws';

/**
 * How far past `maxMessageBytes` the WebSocket layer still reads a message, so that it can be answered with a
 * `payload_too_large` frame and the socket kept; a longer one is refused from its frame header, unread, by
 * closing the socket with 1009 (Message Too Big). Memory per socket stays bounded by about the cap.
 */
const OVERSIZE_READ_BYTES = 1024 * 1024;
/** At the end of a shutdown, how long the sockets get to close. */
const CLOSE_WAIT_MS = 1_000;
/** WebSocket close codes (RFC 6455): the server is going away; a limit refused the socket, try again later. */
const GOING_AWAY = 1001;
const TRY_AGAIN_LATER = 1013;

export interface EndpointDeps {
  dispatcher: Dispatcher;
  stats: Stats;
  /** New sessions per address: a socket counts as one, from the same budget as WebRTC sessions. */
  sessionRate: SessionRate;
}

/** Every open socket: admission within the session limits, and graceful shutdown. */
export class WebSocketEndpoint {
  readonly #config: Config;
  readonly #deps: EndpointDeps;
  readonly #connections = new Set<SocketConnection>();
  readonly #perAddress = new Map<string, number>();
  #accepting = true;
  #opened = 0;
  #emptied: (() => void) | undefined;

  constructor(config: Config, deps: EndpointDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  /** The most the WebSocket layer reads of one message (its `maxPayload`). */
  get maxReadBytes(): number {
    return this.#config.maxMessageBytes + OVERSIZE_READ_BYTES;
  }

  /** Sockets open now. */
  get size(): number {
    return this.#connections.size;
  }

  /** Answers `GET /v1/ws`. Throws the AppError that refuses it (over a limit, shutting down). */
  handle(request: Request, ip: string, identity: Identity): Response {
    if (request.method !== 'GET') {
      throw new AppError('method_not_allowed', `${WEBSOCKET_PATH} takes GET with Upgrade: websocket`);
    }
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      const error = new AppError('invalid_request', `${WEBSOCKET_PATH} is a WebSocket endpoint: connect with a WebSocket client`);
      return json({ error: error.toJSON() }, 426, { upgrade: 'websocket' });
    }
    this.#admit(ip);
    this.#deps.sessionRate.admit(ip);
    let connection: SocketConnection | undefined;
    setWebSocketHooks(request, {
      open: (peer) => {
        connection = this.#open(peer, ip, identity);
      },
      message: (_peer, message) => connection?.receive(message.rawData),
      close: (_peer, { code }) => {
        if (connection) this.#release(connection, ip, `code ${code ?? 'none'}`);
      },
      error: (_peer, error) => log.debug('WebSocket error', { socket: connection?.caller.id, error }),
    });
    // crossws upgrades a 426 whose request carries hooks; a server started without crossws sends it as it is.
    return new Response(null, { status: 426, headers: { upgrade: 'websocket' } });
  }

  /**
   * Graceful shutdown, as for sessions: tells every socket, lets requests in flight finish within `graceMs`,
   * answers the rest `shutting_down`, then closes every socket (1001).
   */
  async shutdown(graceMs: number = this.#config.shutdownGraceMs): Promise<void> {
    this.#accepting = false;
    if (this.#connections.size === 0) return; // none can open from now on
    for (const connection of this.#connections) connection.send(shutdownNotice(graceMs));
    await this.#deps.dispatcher.drainOrCancel(graceMs, () => [...this.#connections].map((connection) => connection.caller));
    // drain() wakes as the last handler settles, a few microtasks before its answer is sent: let them run.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.#connections.size === 0) return;
    const emptied = new Promise<void>((resolve) => (this.#emptied = resolve));
    for (const connection of this.#connections) connection.close(GOING_AWAY, 'server shutting down');
    await Promise.race([emptied, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref?.())]);
  }

  /** The same limits as sessions, counted over sockets: at most `maxSessions` open, `maxSessionsPerIp` per address. */
  #admit(ip: string): void {
    if (!this.#accepting) throw new AppError('shutting_down', 'Server is shutting down; try again shortly');
    const { maxSessions, maxSessionsPerIp } = this.#config;
    if (this.#connections.size >= maxSessions) {
      throw new AppError('server_busy', `${maxSessions} WebSockets are open; try again later`);
    }
    if ((this.#perAddress.get(ip) ?? 0) >= maxSessionsPerIp) {
      throw new AppError('session_limit', `${maxSessionsPerIp} WebSockets are open from this address`);
    }
  }

  /** Admits again at open: sockets upgraded at the same moment all passed the check in `handle`. */
  #open(peer: Peer, ip: string, identity: Identity): SocketConnection | undefined {
    try {
      this.#admit(ip);
    } catch (error) {
      const refused = toAppError(error);
      peer.send(JSON.stringify(errorFrame(refused)));
      peer.close(TRY_AGAIN_LATER, refused.code);
      return undefined;
    }
    // Binary messages as bytes: Deno's sockets deliver Blobs by default (ws's Buffers already are bytes).
    if (peer.websocket.binaryType === 'blob') peer.websocket.binaryType = 'arraybuffer';
    const connection = new SocketConnection(`ws-${++this.#opened}`, peer, {
      identity,
      dispatcher: this.#deps.dispatcher,
      traffic: this.#deps.stats.traffic,
      maxMessageBytes: this.#config.maxMessageBytes,
      maxInFlight: this.#config.maxInFlightPerSession,
      messageRate: new MessageRate({ perSecond: this.#config.messageRatePerSecond, burst: this.#config.messageBurst }),
    });
    this.#connections.add(connection);
    this.#perAddress.set(ip, (this.#perAddress.get(ip) ?? 0) + 1);
    return connection;
  }

  #release(connection: SocketConnection, ip: string, reason: string): void {
    connection.onSocketClosed(reason);
    if (!this.#connections.delete(connection)) return;
    const left = (this.#perAddress.get(ip) ?? 1) - 1;
    if (left > 0) this.#perAddress.set(ip, left);
    else this.#perAddress.delete(ip);
    if (this.#connections.size === 0) this.#emptied?.();
  }
}
