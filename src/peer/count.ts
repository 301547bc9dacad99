import type { PeerFactory } from './factory.ts';

/**
 * Counts the server's peer connections, for get_stats and the soak (bench/soak.ts). `open`: made and not yet
 * closed. `uncollected`: not yet collected by V8, open ones included. A wrtc peer in this process keeps its native
 * threads until then (see reclaim.ts); a peer process's stand-in (process/remote-peer.ts) held past its close is a leak
 * all the same. After churn both come back to zero, the second once a collection has run.
 */
export class PeerCount {
  open = 0;
  uncollected = 0;
  private readonly collected = new FinalizationRegistry<void>(() => this.uncollected--);

  /** `factory`, counting what it makes; a peer counts as closed at its first `close()`. */
  track(factory: PeerFactory): PeerFactory {
    return (config) => {
      const pc = factory(config);
      this.open++;
      this.uncollected++;
      this.collected.register(pc);
      const close = pc.close.bind(pc);
      let closed = false;
      pc.close = () => {
        if (!closed) {
          closed = true;
          this.open--;
        }
        close();
      };
      return pc;
    };
  }
}
