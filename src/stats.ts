import type { LinkStats } from './protocol/link.ts';

/** Counters behind `get_stats`: requests per action with latency percentiles, messages and bytes moved. */
const SAMPLES_PER_ACTION = 1024;

class LatencyWindow {
  count = 0;
  errors = 0;
  max = 0;
  private readonly samples = new Float64Array(SAMPLES_PER_ACTION);

  record(ms: number, ok: boolean): void {
    this.samples[this.count % SAMPLES_PER_ACTION] = ms;
    this.count++;
    if (!ok) this.errors++;
    if (ms > this.max) this.max = ms;
  }

  /** Percentiles over the most recent samples: recent behaviour is what an operator asks about. */
  summary() {
    const recent = this.samples.slice(0, Math.min(this.count, SAMPLES_PER_ACTION)).sort();
    const at = (q: number) => (recent.length ? recent[Math.min(recent.length - 1, Math.floor(q * recent.length))] : 0);
    return { count: this.count, errors: this.errors, p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), max_ms: round(this.max) };
  }
}

export class Stats {
  readonly startedAt = Date.now();
  private readonly byAction = new Map<string, LatencyWindow>();
  /** Every data channel's traffic, added up by the links themselves. */
  readonly traffic: LinkStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };

  recordRequest(action: string, ms: number, ok: boolean): void {
    let window = this.byAction.get(action);
    if (!window) this.byAction.set(action, (window = new LatencyWindow()));
    window.record(ms, ok);
  }

  requests() {
    let total = 0;
    let errors = 0;
    const byAction: Record<string, ReturnType<LatencyWindow['summary']>> = {};
    for (const [action, window] of this.byAction) {
      total += window.count;
      errors += window.errors;
      byAction[action] = window.summary();
    }
    return { total, errors, by_action: byAction };
  }

  uptimeSeconds(): number {
    return round((Date.now() - this.startedAt) / 1000);
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
