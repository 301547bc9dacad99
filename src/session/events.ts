/**
 * A session's signaling events (server ICE candidates, state changes), numbered so a subscriber that
 * reconnects with `lastEventId` gets exactly what it missed. Bounded: a session produces a handful.
 */
export type SignalEvent =
  | { kind: 'candidate'; candidate: RTCIceCandidateInit | null }
  | { kind: 'state'; state: string };

export interface NumberedEvent {
  id: number;
  event: SignalEvent;
}

const MAX_EVENTS = 256;

export class EventLog {
  private readonly events: NumberedEvent[] = [];
  private nextId = 1;
  private ended = false;
  private wake: Array<() => void> = [];

  push(event: SignalEvent): void {
    if (this.ended) return;
    this.events.push({ id: this.nextId++, event });
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.notify();
  }

  /** The server candidates logged so far (end-of-candidates markers left out). */
  candidates(): RTCIceCandidateInit[] {
    const found: RTCIceCandidateInit[] = [];
    for (const { event } of this.events) if (event.kind === 'candidate' && event.candidate) found.push(event.candidate);
    return found;
  }

  /** Resolves once any event is logged after the current last one, or after `timeoutMs`. */
  async next(timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    await this.changed(signal);
  }

  /** No more events will come; followers finish after what is logged. */
  end(): void {
    this.ended = true;
    this.notify();
  }

  /** Yields events after `afterId`, then new ones as they come, until the log ends or `signal` aborts. */
  async *follow(afterId: number, signal?: AbortSignal): AsyncGenerator<NumberedEvent> {
    let cursor = afterId;
    while (!signal?.aborted) {
      const pending = this.events.filter((e) => e.id > cursor);
      for (const numbered of pending) {
        cursor = numbered.id;
        yield numbered;
      }
      if (this.ended) return;
      if (pending.length === 0) await this.changed(signal);
    }
  }

  private changed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wake.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }
}
