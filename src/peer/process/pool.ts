import type { PeerBackend } from '../../config.ts';
import { log } from '../../log.ts';
import type { PeerFactory } from '../factory.ts';
import { PeerProcess, RemotePeer } from './remote.ts';

/** A host that dies sooner than this after starting is not restarted until a peer needs one. */
const RESTART_AFTER_MS = 1_000;

/**
 * The peer processes the server's WebRTC peers live in: `size` of them, on `backend`, each new peer going to the
 * one holding fewest. One that dies is replaced at once; its peers fail, and their sessions wait for a resume.
 */
export class PeerProcessPool {
  #processes: PeerProcess[] = [];
  #closed = false;
  /** Processes that died while the server was running (a native crash, or killed). */
  crashes = 0;

  constructor(
    readonly size: number,
    readonly backend: PeerBackend,
  ) {}

  /** The factory for the session manager. A RemotePeer has the members of RTCPeerConnection the sessions use. */
  readonly createPeer: PeerFactory = (config) => new RemotePeer(this.#pick(), config) as unknown as RTCPeerConnection;

  /** The processes running now, and the peers and channels each holds. */
  get processes(): { pid: number | undefined; peers: number; channels: number }[] {
    return this.#processes.map((host) => ({ pid: host.pid, peers: host.peers.size, channels: host.channels.size }));
  }

  /**
   * Starts the processes ahead of the first peer, which would otherwise wait for them (a process takes ~0.5 s to
   * load); resolves once they serve, and rejects, saying why, when they cannot load the backend.
   */
  async start(): Promise<void> {
    if (!this.#closed) this.#fill();
    const hosts = [...this.#processes];
    await Promise.all(hosts.map((host) => host.ready));
    const failed = hosts.find((host) => host.unavailable);
    if (failed) throw new Error(failed.unavailable);
  }

  /** Ends every host; their peers close with them. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#processes.map((host) => host.close()));
    this.#processes = [];
  }

  #pick(): PeerProcess {
    if (this.#closed) throw new Error('The peer processes are closed (the server is shutting down)');
    // One that has died but is not yet forgotten (its exit is being handled) is no place for a new peer.
    this.#processes = this.#processes.filter((host) => host.alive);
    this.#fill();
    return this.#processes.reduce((least, host) => (host.peers.size < least.peers.size ? host : least));
  }

  /** Starts processes until there are `size`. */
  #fill(): void {
    while (this.#processes.length < this.size) this.#start();
  }

  #start(): void {
    const host = new PeerProcess(this.backend);
    const startedAt = Date.now();
    this.#processes.push(host);
    void host.exited.then(({ code, signal }) => {
      this.#processes = this.#processes.filter((running) => running !== host);
      // One that could not load its backend is no crash, and another would fail the same way.
      if (this.#closed || host.closing || host.unavailable) return;
      this.crashes++;
      // Started again at once, so resuming clients find it warm; one that dies as it starts waits for a peer to need it.
      const replaceNow = Date.now() - startedAt > RESTART_AFTER_MS && this.#processes.length < this.size;
      log.warn('peer process died; its sessions wait for their clients to resume', { code, signal, crashes: this.crashes, replaced: replaceNow });
      if (replaceNow) this.#start();
    });
  }
}
