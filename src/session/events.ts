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

/** Told of each event as it is logged, and of the log's end (the cluster passes them to other nodes). */
export type EventListener = (change: { numbered: NumberedEvent } | { end: true }) => void;

export class EventLog {
  private readonly events: NumberedEvent[] = [];
  private nextId = 1;
  private ended = false;
  private wake: Array<() => void> = [];

  constructor(private readonly listener?: EventListener) {}

  push(event: SignalEvent): void {
    if (this.ended) return;
    const numbered = { id: this.nextId++, event };
    this.events.push(numbered);
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.listener?.({ numbered });
    this.notify();
  }

  /** The events after `afterId` kept so far, and whether the log has ended: what a follower elsewhere starts from. */
  since(afterId: number): { events: NumberedEvent[]; ended: boolean } {
    return { events: this.events.filter((e) => e.id > afterId), ended: this.ended };
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
    if (this.ended) return;
    this.ended = true;
    this.listener?.({ end: true });
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
