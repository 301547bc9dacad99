/**
 * One peer process, seen from the server: starts host.ts, sends it commands, routes its events and replies by id to
 * the peers and channels it holds (process-link.ts), and fails them all when it dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { PeerBackend } from '../../config.ts';
import { builtPath, repositoryRoot } from '../../paths.ts';
import { invalidState } from '../dom-errors.ts';
import { Heartbeat } from './heartbeat.ts';
import type { ChannelEvents, PeerEvents, ProcessLink } from './process-link.ts';
import type { Command, PeerEvent, PeerMethod } from './protocol.ts';
import { encodeMessage, MessageReader } from './wire.ts';

/**
 * The peer process's code: the built one beside a built server (`npm start` runs dist/server.mjs; plain node then,
 * without tsx's 35 MB), else the source, which this process's loader (tsx, Deno) runs.
 */
const HOST_PATH = import.meta.url.endsWith('.mjs') ? builtPath('peerProcess') : path.join(import.meta.dirname, 'host.ts');
/** How long a closing peer process gets to exit before it is killed. */
const EXIT_WAIT_MS = 2_000;
/** How long a new peer process may take to load wrtc and say it is ready before it counts as hung. */
const STARTUP_TIMEOUT_MS = 30_000;

export interface PeerProcessOptions {
  /** The WebRTC stack the process runs its peers on. */
  backend: PeerBackend;
  /** Silence after which the process counts as hung and is killed (heartbeat.ts). */
  heartbeatTimeoutMs: number;
}

/** One peer process and the peers it holds. */
export class PeerProcess implements ProcessLink {
  readonly peers = new Map<number, PeerEvents>();
  readonly channels = new Map<number, ChannelEvents>();
  /** Settles when the process has exited, with how it ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Settles once the process serves commands (or has exited). */
  readonly ready: Promise<void>;
  #markReady!: () => void;
  #unavailable: string | undefined;
  #alive = true;
  #closing = false;
  #hung = false;
  /** Its open-file limit, as it reported it once ready; null where it could not read it. */
  fdLimit: number | null = null;
  readonly #heartbeat: Heartbeat;
  readonly #child: ChildProcess;
  readonly #calls = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 0;

  constructor(options: PeerProcessOptions) {
    const [command, args] = hostCommand(options.backend);
    // A process group of its own: a Ctrl-C in the terminal, or a signal to the server's group, reaches the server,
    // which drains its requests and then ends this process itself (it ignores those signals too: host.ts).
    this.#child = spawn(command, args, { cwd: repositoryRoot(), stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    this.#heartbeat = new Heartbeat({
      timeoutMs: options.heartbeatTimeoutMs,
      startupTimeoutMs: Math.max(STARTUP_TIMEOUT_MS, options.heartbeatTimeoutMs),
      ping: () => this.command({ op: 'ping' }),
      hung: () => {
        this.#hung = true;
        this.#child.kill('SIGKILL');
      },
    });
    // A write to a process that just died fails with EPIPE; its exit handler does the cleaning up.
    this.#child.stdin!.on('error', () => {});
    const reader = new MessageReader();
    this.#child.stdout!.on('data', (chunk: Buffer) => {
      this.#heartbeat.heard();
      for (const { header, payload } of reader.push(chunk)) this.#receive(header as PeerEvent, payload);
    });
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': after the process's last words on stdout (why it could not start) have been read.
      this.#child.once('close', (code, signal) => {
        this.#heartbeat.stop();
        this.#died();
        this.#markReady();
        resolve({ code, signal });
      });
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Why the process could not load its peer backend (it then exits); undefined when it could. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  nextId(): number {
    return ++this.#nextId;
  }

  /**
   * Sends a command. Those of one tick go out in one writev (a system call each would cost more than the command),
   * large payloads uncopied.
   */
  command(command: Command, payload?: Uint8Array | string): void {
    if (!this.#alive) return;
    const stdin = this.#child.stdin!;
    if (stdin.writableCorked === 0) {
      stdin.cork();
      process.nextTick(() => stdin.uncork());
    }
    for (const part of encodeMessage(command as never, payload)) stdin.write(part);
  }

  call(peer: number, method: PeerMethod, arg?: unknown): Promise<unknown> {
    if (!this.#alive) return Promise.reject(invalidState('The peer process has exited'));
    const call = this.nextId();
    this.command({ op: 'call', peer, call, method, arg });
    return new Promise((resolve, reject) => this.#calls.set(call, { resolve, reject }));
  }

  /** Whether it is ending because `close()` was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Whether it was killed for not answering the heartbeat. */
  get hung(): boolean {
    return this.#hung;
  }

  /** Ends the process: its peers close with it. Resolves once it has exited (killed if it lingers). */
  async close(): Promise<void> {
    if (!this.#alive) return void (await this.exited);
    this.#closing = true;
    this.#heartbeat.stop();
    this.#child.stdin!.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), EXIT_WAIT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  #receive(event: PeerEvent, payload: Uint8Array | undefined): void {
    switch (event.ev) {
      case 'ready':
        this.fdLimit = event.fdLimit;
        return this.#markReady();
      case 'unavailable':
        this.#unavailable = event.message;
        return;
      case 'pong':
        return;
      case 'reply': {
        this.peers.get(event.peer)?.update(event.snapshot);
        const call = this.#calls.get(event.call);
        this.#calls.delete(event.call);
        if (event.error) call?.reject(Object.assign(new Error(event.error.message), { name: event.error.name }));
        else call?.resolve(event.value);
        return;
      }
      case 'peer':
        return this.peers.get(event.peer)?.fire(event);
      case 'datachannel':
        return this.peers.get(event.peer)?.incoming(event.channel, event.label, event.readyState);
      case 'open':
        return this.channels.get(event.channel)?.opened();
      case 'close':
        return this.channels.get(event.channel)?.closed();
      case 'message':
        return this.channels.get(event.channel)?.message(event.binary, payload ?? new Uint8Array(0));
      case 'buffered':
        return this.channels.get(event.channel)?.buffered(event.sent, event.amount);
    }
  }

  #died(): void {
    this.#alive = false;
    for (const call of this.#calls.values()) call.reject(invalidState('The peer process exited'));
    this.#calls.clear();
    for (const channel of [...this.channels.values()]) channel.closed();
    for (const peer of [...this.peers.values()]) peer.lost();
  }
}

/**
 * How to start host.ts on `backend`: with this process's runtime and loader (tsx under Node; Deno with the
 * project's config).
 */
function hostCommand(backend: PeerBackend): [string, string[]] {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (deno) return [deno.execPath(), ['run', '--allow-env', '--allow-read', '--allow-ffi', '--allow-sys', '--config', path.join(repositoryRoot(), 'deno.json'), HOST_PATH, backend]];
  // The loader flags (tsx's --import/--require) carry over; a debugger port would clash, so those do not.
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--inspect'));
  return [process.execPath, [...execArgv, HOST_PATH, backend]];
}
