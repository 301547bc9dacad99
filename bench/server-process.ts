/**
 * The bench's server runs in a child process (bench/server.ts), so that the CPU time and memory measured are the
 * server's alone and not the clients'. This is the parent's handle on it: its address, its CPU and memory, and
 * the signaling of raw echo peers over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Memory } from './transports/types.ts';

export type ToServer =
  | { id: number; type: 'usage'; gc: boolean }
  | { id: number; type: 'raw-offer'; peer: string; sdp: string }
  | { id: number; type: 'raw-close'; peer: string }
  | { type: 'raw-candidate'; peer: string; candidate: RTCIceCandidateInit };

export type FromServer =
  | { type: 'ready'; url: string; dataDir: string }
  | { type: 'reply'; id: number; sdp?: string; cpuMs?: number; crashes?: number; memory?: Memory }
  | { type: 'raw-candidate'; peer: string; candidate: RTCIceCandidateInit };

type Request = ToServer extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;
type Reply = Extract<FromServer, { type: 'reply' }>;

export class BenchServer {
  readonly url: string;
  /** Its data directory, whose native socket native hosts relay to. */
  readonly dataDir: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #replies = new Map<number, (reply: Reply) => void>();
  readonly #candidates = new Map<string, (candidate: RTCIceCandidateInit) => void>();
  #nextId = 0;
  /** How it ended, once it has: a crash of the server itself (its peers in its own process) shows here. */
  ended: string | undefined;

  private constructor(child: ChildProcess, url: string, dataDir: string) {
    this.#child = child;
    this.url = url;
    this.dataDir = dataDir;
    this.pid = child.pid!;
    child.once('exit', (code, signal) => {
      this.ended = signal ?? `exit ${code}`;
      // Whoever waits for a reply would wait for ever.
      for (const reply of this.#replies.values()) reply({ type: 'reply', id: -1 });
    });
    child.on('message', (message: FromServer) => {
      if (message.type === 'reply') this.#replies.get(message.id)?.(message);
      else if (message.type === 'raw-candidate') this.#candidates.get(message.peer)?.(message.candidate);
    });
  }

  /** `BENCH_SERVER_PROFILE=<dir>` writes the server's CPU profile there (node --cpu-prof) when it stops. */
  static start(env: Record<string, string> = {}): Promise<BenchServer> {
    const profile = process.env.BENCH_SERVER_PROFILE;
    const child = fork(new URL('./server.ts', import.meta.url), [], {
      execArgv: ['--expose-gc', '--import', 'tsx', ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [])],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`bench server exited (${code}) before it was ready`)));
      child.once('message', (message: FromServer) => {
        if (message.type === 'ready') resolve(new BenchServer(child, message.url, message.dataDir));
      });
    });
  }

  get wsUrl(): string {
    return `${this.url.replace(/^http/, 'ws')}/v1/ws`;
  }

  call(request: Request): Promise<Reply> {
    const id = ++this.#nextId;
    if (this.ended) return Promise.resolve({ type: 'reply', id });
    return new Promise((resolve) => {
      this.#replies.set(id, (reply) => {
        this.#replies.delete(id);
        resolve(reply);
      });
      this.#child.send({ ...request, id });
    });
  }

  /** The server's CPU time so far (user + system, every thread), from its own process.cpuUsage(). */
  async cpuMs(): Promise<number> {
    return (await this.call({ type: 'usage', gc: false })).cpuMs!;
  }

  /** Peer processes that died while the server ran (native crashes), by the server's own count. */
  async crashes(): Promise<number> {
    return (await this.call({ type: 'usage', gc: false })).crashes ?? 0;
  }

  /** The server's memory after a forced full collection. */
  async memory(): Promise<Memory> {
    return (await this.call({ type: 'usage', gc: true })).memory!;
  }

  /** Candidates the server's raw peer `peer` gathers; and ours go to it with `sendCandidate`. */
  onCandidate(peer: string, listener: ((candidate: RTCIceCandidateInit) => void) | undefined): void {
    if (listener) this.#candidates.set(peer, listener);
    else this.#candidates.delete(peer);
  }

  sendCandidate(peer: string, candidate: RTCIceCandidateInit): void {
    this.#child.send({ type: 'raw-candidate', peer, candidate } satisfies ToServer);
  }

  stop(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      this.#child.once('exit', () => resolve());
      this.#child.kill('SIGTERM');
    });
  }
}
