export interface Memory {
  /** Resident memory, bytes: what the machine pays (wrtc's native side included). */
  rssBytes: number;
  /** The JS heap plus buffers outside it, bytes (where the server is a JS process of the bench's own): finer than RSS. */
  heapBytes?: number;
  /** Threads of the server side (its peer processes included), where the bench can count them. */
  threads?: number;
}

/** What the bench needs of each transport: a session to time, and the server side's CPU and memory. */
export interface BenchSession {
  /** One small request (`health`; the raw echo: a small message), answered. */
  request(): Promise<void>;
  /** The payload up, then back, checked. */
  transfer?(payload: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface Transport<S extends BenchSession = BenchSession> {
  key: string;
  label: string;
  /** Opens a session (a connection, for transports without sessions) and has its first answer. */
  open(): Promise<S>;
  /** CPU time (ms) the server side serving `session` has used so far. */
  cpuMs(session: S): Promise<number>;
  /** Memory of the server side now, after a forced GC where it can; compared before and after opening `sessions`. */
  memory(sessions: readonly S[]): Promise<Memory>;
  /** How the transfer payload travels, or why it cannot. */
  transferNote: string;
  /** Session counts for the memory measurement; default 1, 10, 100 (the last also runs the concurrency test). */
  sessionCounts?: number[];
  /** Why some session counts are left out. */
  sessionNote?: string;
}
