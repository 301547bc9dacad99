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
  | { type: 'reply'; id: number; sdp?: string; cpuMs?: number; memory?: Memory }
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

  private constructor(child: ChildProcess, url: string, dataDir: string) {
    this.#child = child;
    this.url = url;
    this.dataDir = dataDir;
    this.pid = child.pid!;
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
    return new Promise((resolve) => {
      this.#child.removeAllListeners('exit');
      this.#child.once('exit', () => resolve());
      this.#child.kill('SIGTERM');
    });
  }
}
