import type { PeerBackend } from '../../config.ts';
import { AppError } from '../../errors.ts';
import { log } from '../../log.ts';
import { fdBudget, overBudget, roomForPeer } from '../fd-budget.ts';
import type { PeerFactory } from '../factory.ts';
import { PeerProcess, type PeerProcessOptions } from './peer-process.ts';
import { RemotePeer } from './remote-peer.ts';

/** A host that dies sooner than this after starting is not restarted until a peer needs one. */
const RESTART_AFTER_MS = 1_000;

export interface PoolOptions extends PeerProcessOptions {
  /** File descriptors the peers of one process may hold; by default its open-file limit less a reserve. */
  fdBudget?: number;
}

/**
 * The peer processes the server's WebRTC peers live in: `size` of them, on `options.backend`, each new peer going to
 * the one holding fewest, among those with file descriptors to spare (fd-budget.ts). One that dies, or stops
 * answering and is killed, is replaced at once; its peers fail, and their sessions wait for a resume.
 */
export class PeerProcessPool {
  #processes: PeerProcess[] = [];
  /** Set once shutdown begins: from then on no process is started, for a peer or to replace one. */
  #stopping = false;
  /** Processes that died while the server was running (a native crash, killed, or hung). */
  crashes = 0;

  constructor(
    readonly size: number,
    readonly options: PoolOptions,
  ) {}

  /** The factory for the session manager. A RemotePeer has the members of RTCPeerConnection the sessions use. */
  readonly createPeer: PeerFactory = (config) => new RemotePeer(this.#pick(), config) as unknown as RTCPeerConnection;

  /** The processes running now: the peers and channels each holds, and its file-descriptor budget for peers. */
  get processes(): { pid: number | undefined; peers: number; channels: number; fdBudget: number }[] {
    return this.#processes.map((host) => ({
      pid: host.pid,
      peers: host.peers.size,
      channels: host.channels.size,
      fdBudget: fdBudget(host.fdLimit, this.options.fdBudget),
    }));
  }

  /**
   * Starts the processes ahead of the first peer, which would otherwise wait for them (a process takes ~0.5 s to
   * load); resolves once they serve, and rejects, saying why, when they cannot load the backend.
   */
  async start(): Promise<void> {
    if (!this.#stopping) this.#fill();
    const hosts = [...this.#processes];
    await Promise.all(hosts.map((host) => host.ready));
    const failed = hosts.find((host) => host.unavailable);
    if (failed) throw new Error(failed.unavailable);
  }

  /** Shutdown has begun: the processes keep serving the peers they hold, but none is started any more. */
  drain(): void {
    this.#stopping = true;
  }

  /** Ends every host; their peers close with them. */
  async close(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#processes.map((host) => host.close()));
    this.#processes = [];
  }

  #pick(): PeerProcess {
    if (this.#stopping) throw new AppError('shutting_down', 'Server is shutting down; try again shortly');
    // One that has died but is not yet forgotten (its exit is being handled) is no place for a new peer.
    this.#processes = this.#processes.filter((host) => host.alive);
    this.#fill();
    const roomy = this.#processes.filter((host) => roomForPeer(host.peers.values(), fdBudget(host.fdLimit, this.options.fdBudget)));
    if (roomy.length === 0) throw overBudget(this.processes.map((p) => p.fdBudget));
    return roomy.reduce((least, host) => (host.peers.size < least.peers.size ? host : least));
  }

  /** Starts processes until there are `size`. */
  #fill(): void {
    while (this.#processes.length < this.size) this.#start();
  }

  #start(): void {
    const host = new PeerProcess(this.options);
    const startedAt = Date.now();
    this.#processes.push(host);
    void host.exited.then(({ code, signal }) => {
      this.#processes = this.#processes.filter((running) => running !== host);
      // One that could not load its backend is no crash, and another would fail the same way.
      if (this.#stopping || host.closing || host.unavailable) return;
      this.crashes++;
      // Started again at once, so resuming clients find it warm; one that dies as it starts waits for a peer to need it.
      const replaceNow = Date.now() - startedAt > RESTART_AFTER_MS && this.#processes.length < this.size;
      const what = host.hung ? 'peer process stopped answering and was killed' : 'peer process died';
      log.warn(`${what}; its sessions wait for their clients to resume`, { code, signal, crashes: this.crashes, replaced: replaceNow });
      if (replaceNow) this.#start();
    });
  }
}
