/**
 * What a session has sent for each request on its resumable channel, kept so that a client who lost its link
 * (network change, sleep, a server-side peer failure) can resume and get exactly what it missed: the chunks
 * after the last one it saw, then the final answer. Bounded in bytes and time; the oldest goes first.
 */
export interface OutboxFrame {
  text: string;
  attachment?: Uint8Array;
}

/** Hands a frame to a link; must not throw (a closed link just drops it: the outbox still has it). */
export type Deliver<L> = (link: L, frame: OutboxFrame) => void;

interface Entry<L> {
  /** Where live frames go; unset while the client is away or has not claimed the request after resuming. */
  target: L | undefined;
  /** Chunks still held, in order; `chunks[0]` has index `firstIndex`. */
  chunks: OutboxFrame[];
  firstIndex: number;
  final?: OutboxFrame;
  finishedAt?: number;
  bytes: number;
}

/** How a resuming client's pending request stands. */
export type ClaimResult = 'replayed' | 'lost' | 'unknown';

/** Ids whose answers were dropped for space, so a resume says `lost` (never re-run) rather than `unknown`. */
const MAX_TOMBSTONES = 1_024;

export class Outbox<L> {
  private readonly entries = new Map<string, Entry<L>>();
  private readonly tombstones = new Set<string>();
  private bytes = 0;

  constructor(
    private readonly deliver: Deliver<L>,
    private readonly limits: { maxBytes: number; retentionMs: number },
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  /** A request arrived on `link`; its frames will be kept and sent there. */
  open(requestId: string, link: L): void {
    this.entries.set(requestId, { target: link, chunks: [], firstIndex: 0, bytes: 0 });
  }

  /** A streamed chunk: kept, and sent if the client is there. */
  chunk(requestId: string, text: string): void {
    const entry = this.entries.get(requestId);
    if (!entry) return;
    const frame = { text };
    entry.chunks.push(frame);
    this.grow(entry, text.length);
    if (entry.target !== undefined) this.deliver(entry.target, frame);
    this.fit();
  }

  /** A frame that matters only live (a progress event): sent if the client is there, never kept. */
  live(requestId: string, text: string): void {
    const target = this.entries.get(requestId)?.target;
    if (target !== undefined) this.deliver(target, { text });
  }

  /** The final answer: kept for `retentionMs` (the link may have died with it in flight), sent if possible. */
  finish(requestId: string, frame: OutboxFrame, now = Date.now()): void {
    const entry = this.entries.get(requestId);
    if (!entry) return;
    entry.final = frame;
    entry.finishedAt = now;
    this.grow(entry, frame.text.length + (frame.attachment?.byteLength ?? 0));
    if (entry.target !== undefined) this.deliver(entry.target, frame);
    this.fit();
  }

  /** The link is gone: its requests keep running, their frames are only kept until the client resumes. */
  detach(link: L): void {
    for (const entry of this.entries.values()) if (entry.target === link) entry.target = undefined;
  }

  /**
   * A resumed client asks for `requestId`, having seen `received` chunks: replays the rest and the final answer
   * to `link`, which gets the live frames from now on.
   */
  claim(requestId: string, received: number, link: L): ClaimResult {
    const entry = this.entries.get(requestId);
    if (!entry) return this.tombstones.has(requestId) ? 'lost' : 'unknown';
    entry.target = link;
    const skip = Math.max(0, received - entry.firstIndex);
    for (const frame of entry.chunks.slice(skip)) this.deliver(link, frame);
    if (entry.final) this.deliver(link, entry.final);
    return 'replayed';
  }

  /** Drops finished answers older than the retention time. */
  prune(now = Date.now()): void {
    for (const [id, entry] of this.entries) {
      if (entry.finishedAt !== undefined && now - entry.finishedAt > this.limits.retentionMs) this.remove(id, false);
    }
  }

  clear(): void {
    this.entries.clear();
    this.tombstones.clear();
    this.bytes = 0;
  }

  private grow(entry: Entry<L>, bytes: number): void {
    entry.bytes += bytes;
    this.bytes += bytes;
  }

  /**
   * Over the byte bound: finished answers go first, oldest first, and are remembered as lost; then the oldest
   * held chunks of running requests (a resumed stream then shows a gap in `index`; its final answer is whole).
   */
  private fit(): void {
    if (this.bytes <= this.limits.maxBytes) return;
    // Oldest first, stopping once under the bound: a busy session pays for what it evicts, not for all it keeps.
    for (const [id, entry] of this.entries) {
      if (this.bytes <= this.limits.maxBytes) return;
      if (entry.final) this.remove(id, true);
    }
    for (const entry of this.entries.values()) {
      while (this.bytes > this.limits.maxBytes && entry.chunks.length > 0) {
        const dropped = entry.chunks.shift() as OutboxFrame;
        entry.firstIndex++;
        entry.bytes -= dropped.text.length;
        this.bytes -= dropped.text.length;
      }
      if (this.bytes <= this.limits.maxBytes) return;
    }
  }

  private remove(requestId: string, lost: boolean): void {
    const entry = this.entries.get(requestId);
    if (!entry) return;
    this.entries.delete(requestId);
    this.bytes -= entry.bytes;
    if (!lost) return;
    this.tombstones.add(requestId);
    if (this.tombstones.size > MAX_TOMBSTONES) this.tombstones.delete(this.tombstones.values().next().value as string);
  }
}
