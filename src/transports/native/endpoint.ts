/**
 * The server's side of native messaging: a Unix socket (`<dataDir>/native.sock`) that native hosts relay Chrome's
 * ports to, one connection per port, each served by a `NativePort` through the server's one dispatcher, store and
 * state. The socket is the server user's alone (mode 0600): reaching it is trusted as Chrome's `allowed_origins`
 * is, so ports need no API key.
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../../config.ts';
import type { Dispatcher } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import { log } from '../../log.ts';
import { shutdownNotice } from '../../protocol/events.ts';
import { errorFrame } from '../../protocol/frames.ts';
import { MessageRate } from '../../security/rate-limit.ts';
import type { Stats } from '../../stats.ts';
import { NativePort } from './port.ts';

/** After a port's input ends, how long its cancelled requests get to write their answers before it closes. */
const ANSWER_FLUSH_MS = 1_000;

export interface NativeEndpointDeps {
  dispatcher: Dispatcher;
  stats: Stats;
}

export class NativeEndpoint {
  readonly #config: Config;
  readonly #deps: NativeEndpointDeps;
  readonly #ports = new Set<NativePort>();
  #server: net.Server | undefined;
  #path: string | undefined;
  #accepting = true;
  #opened = 0;

  constructor(config: Config, deps: NativeEndpointDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  /** Ports open now. */
  get size(): number {
    return this.#ports.size;
  }

  /**
   * Listens on `socketPath`, made readable and writable by this user only. Resolves false, without listening, when
   * another live server already serves it (the same data directory); a socket left by a dead one is replaced.
   */
  async listen(socketPath: string): Promise<boolean> {
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    if (await answers(socketPath)) return false;
    await unlink(socketPath).catch(() => {});
    // Half-open: a host whose input ended (Chrome closed the port) still reads the answers of what it sent.
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.connect(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      withUmask(0o177, () => server.listen(socketPath, () => resolve()));
    });
    await chmod(socketPath, 0o600);
    server.on('error', (error) => log.warn('native socket failed', { error }));
    this.#server = server;
    this.#path = socketPath;
    return true;
  }

  /** Serves one relayed port; over the session cap it is refused with `server_busy` and ended. */
  connect(socket: net.Socket): void {
    socket.on('error', (error) => log.debug('native port error', { error }));
    const stream = { write: (bytes: Uint8Array, done: () => void) => void socket.write(bytes, () => done()), end: () => socket.end() };
    const port = new NativePort(`native-${++this.#opened}`, stream, {
      dispatcher: this.#deps.dispatcher,
      traffic: this.#deps.stats.traffic,
      maxMessageBytes: this.#config.maxMessageBytes,
      maxInFlight: this.#config.maxInFlightPerSession,
      messageRate: new MessageRate({ perSecond: this.#config.messageRatePerSecond, burst: this.#config.messageBurst }),
    });
    const refusal = this.#refusal();
    if (refusal) {
      port.send(errorFrame(refusal));
      void port.close();
      return;
    }
    this.#ports.add(port);
    socket.on('data', (chunk: Buffer) => port.receive(chunk));
    socket.once('end', () => {
      port.inputEnded();
      void settled(port, ANSWER_FLUSH_MS).then(() => port.close());
    });
    socket.once('close', () => {
      port.onClosed();
      this.#ports.delete(port);
    });
  }

  /**
   * Graceful shutdown, as for sessions: tells every port, lets requests in flight finish within `graceMs`, answers
   * the rest `shutting_down`, then ends every port (its host exits, and Chrome sees the port disconnect).
   */
  async shutdown(graceMs: number = this.#config.shutdownGraceMs): Promise<void> {
    this.#accepting = false;
    this.#server?.close();
    if (this.#path) await unlink(this.#path).catch(() => {});
    for (const port of this.#ports) port.send(shutdownNotice(graceMs));
    await this.#deps.dispatcher.drainOrCancel(graceMs, () => [...this.#ports].map((port) => port.caller));
    // drain() wakes as the last handler settles, a few microtasks before its answer is sent: let them run.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await Promise.all([...this.#ports].map((port) => port.close()));
  }

  #refusal(): AppError | undefined {
    if (!this.#accepting) return new AppError('shutting_down', 'Server is shutting down; try again shortly');
    if (this.#ports.size >= this.#config.maxSessions) {
      return new AppError('server_busy', `${this.#config.maxSessions} native messaging ports are open; try again later`);
    }
    return undefined;
  }
}

/** Whether a server answers on `socketPath`. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Waits, up to `timeoutMs`, for the port's requests to finish, then for their answers to be sent. */
async function settled(port: NativePort, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; port.caller.inFlight.size > 0 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Runs `fn` with the process umask set to `mask`, so a file `fn` creates is never more open than that. */
function withUmask(mask: number, fn: () => void): void {
  let previous: number | undefined;
  try {
    previous = process.umask(mask);
  } catch {
    // A runtime without umask (Deno may refuse it): the chmod after listening still closes the socket to others.
  }
  try {
    fn();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}
