/**
 * Notices a peer process that stopped answering (stopped, stuck in native code, starved): without it, every offer
 * and every session on that process would wait for as long as it hangs, and nothing would say why. Anything the
 * process sends counts as an answer; after an interval of silence a ping asks for one. Silent past the timeout
 * (longer before its first word: loading wrtc takes a while on a busy machine), the process is hung, and the
 * owner ends it: its peers then fail as in a crash, and their sessions resume on a fresh process.
 */
export interface HeartbeatOptions {
  /** Silence after which the process counts as hung. */
  timeoutMs: number;
  /** The same, until the process has said anything at all. */
  startupTimeoutMs: number;
  ping(): void;
  hung(silentMs: number): void;
}

/** Times are from the monotonic clock: a wall clock set forward must not look like silence. */
export class Heartbeat {
  #lastHeard = performance.now();
  #lastTick = performance.now();
  #started = false;
  readonly #intervalMs: number;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #options: HeartbeatOptions;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.#intervalMs = Math.max(10, Math.min(1_000, Math.floor(options.timeoutMs / 4)));
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref?.();
  }

  /** The process said something. */
  heard(): void {
    this.#started = true;
    this.#lastHeard = performance.now();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const now = performance.now();
    const late = now - this.#lastTick > 2 * this.#intervalMs;
    this.#lastTick = now;
    // This process's own event loop stalled: the answers may be in the pipe, unread. Judge at the next tick.
    if (late) return;
    const silent = now - this.#lastHeard;
    if (silent >= (this.#started ? this.#options.timeoutMs : this.#options.startupTimeoutMs)) {
      this.stop();
      this.#options.hung(silent);
    } else if (this.#started && silent >= this.#intervalMs) this.#options.ping();
  }
}
