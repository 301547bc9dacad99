/**
 * How long the server takes to end the session of a client that was killed: it has to find the peer gone (ICE
 * consent checks go unanswered), wait `disconnectGraceMs`, then the resume grace.
 */
import type { App } from '../../src/app.ts';

const POLL_MS = 50;

export class Reclaims {
  private readonly watched = new Map<string, number>();
  private readonly ended: number[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly app: App) {}

  /** The client of session `id` was killed just now. */
  watch(id: string): void {
    this.watched.set(id, Date.now());
    // Polls only while a session is watched: the soak's own timers must not pass for the server's.
    this.timer ??= setInterval(() => this.poll(), POLL_MS);
  }

  summary(): { p50: number; max: number; n: number } {
    const sorted = [...this.ended].sort((a, b) => a - b);
    return { p50: sorted[Math.floor(sorted.length / 2)] ?? 0, max: sorted.at(-1) ?? 0, n: sorted.length };
  }

  private poll(): void {
    for (const [id, killedAt] of this.watched) {
      if (this.exists(id)) continue;
      this.ended.push(Date.now() - killedAt);
      this.watched.delete(id);
    }
    if (this.watched.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private exists(id: string): boolean {
    try {
      this.app.sessions.get(id);
      return true;
    } catch {
      return false;
    }
  }
}
