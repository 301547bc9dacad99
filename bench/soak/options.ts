import { PEER_BACKENDS, type PeerBackend } from '../../src/config.ts';

/**
 * What a soak runs: `npm run soak -- --cycles 200 --concurrency 4 --kill-fraction 0.3 --abrupt-fraction 0.3`, or the
 * same as SOAK_* env.
 */
export interface SoakOptions {
  /** connect / request / disconnect cycles in all, warm-up included. */
  cycles: number;
  /** Client processes cycling at once. */
  concurrency: number;
  /** Share of cycles whose client is SIGKILLed mid-stream instead of closing. */
  killFraction: number;
  /**
   * Share of cycles whose client closes its peer abruptly mid-stream (`pc.close()`: an SCTP ABORT reaches the
   * server while it sends, the moment wrtc's send race would strike) instead of finishing the stream.
   */
  abruptFraction: number;
  /** Cycles before the warm-up measurement, which the end is compared with. */
  warmupCycles: number;
  /**
   * Allowed growth of resident memory (the server's and its peer processes' together) over the second half of the
   * cycles, MiB. RSS climbs to a plateau over the first few hundred cycles (the allocator keeps what the floods
   * needed), differently on each machine; a leak does not stop climbing. 25 over 450 cycles is under 60 KiB a cycle:
   * a peer never freed costs ~0.4 MB, and shows well before.
   */
  rssBoundMiB: number;
  /** Allowed JS heap growth from warm-up to the end, MiB. */
  heapBoundMiB: number;
  /** Threads allowed above the warm-up count (in the server, and in its peer processes) once everything has closed and been collected. */
  threadSlack: number;
  /** How long the server process may take to exit by itself once it has shut down, ms. */
  exitWithinMs: number;
  /** Progress lines while cycling. */
  quiet: boolean;
  /** The server's `peerProcesses` (0: peers in the server's own process); unset: the server's default. */
  peerProcesses?: number;
  /** The server's `peerBackend` (`wrtc` or `node-datachannel`); unset: the server's default. */
  peerBackend?: PeerBackend;
}

export const DEFAULTS: SoakOptions = {
  cycles: 1000,
  concurrency: 4,
  killFraction: 0.1,
  abruptFraction: 1 / 3,
  warmupCycles: 100,
  rssBoundMiB: 25,
  heapBoundMiB: 10,
  threadSlack: 4,
  exitWithinMs: 5_000,
  quiet: false,
};

const SWITCHES = new Set<keyof SoakOptions>(['quiet']);
/** Options that take a name, each from its own list. */
const CHOICES: Partial<Record<keyof SoakOptions, readonly string[]>> = { peerBackend: PEER_BACKENDS };
const KEYS = [...Object.keys(DEFAULTS), 'peerProcesses', 'peerBackend'] as (keyof SoakOptions)[];

/**
 * `--kill-fraction 0.3` or `SOAK_KILL_FRACTION=0.3` (`--quiet` or `SOAK_QUIET=1`, `--peer-backend node-datachannel`
 * or `SOAK_PEER_BACKEND=node-datachannel`); argv wins.
 */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): SoakOptions {
  const options = { ...DEFAULTS };
  for (const key of KEYS) {
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    const at = argv.indexOf(flag);
    const raw = at >= 0 ? (SWITCHES.has(key) ? 'true' : argv[at + 1]) : env[`SOAK_${flag.slice(2).replace(/-/g, '_').toUpperCase()}`];
    if (raw === undefined) continue;
    const choices = CHOICES[key];
    if (choices && !choices.includes(raw)) throw new Error(`${flag} must be one of ${choices.join(', ')}, not ${raw}`);
    const value = choices ? raw : SWITCHES.has(key) ? raw !== '0' && raw !== 'false' : Number(raw);
    if (typeof value === 'number' && !(value >= 0)) throw new Error(`${flag} must be a number >= 0, not ${raw}`);
    (options as Record<string, unknown>)[key] = value;
  }
  if (options.killFraction + options.abruptFraction > 1) throw new Error('--kill-fraction and --abrupt-fraction must add up to at most 1');
  if (options.cycles < 1 || options.concurrency < 1) throw new Error('--cycles and --concurrency must be at least 1');
  options.warmupCycles = Math.min(options.warmupCycles, Math.floor(options.cycles / 2));
  return options;
}
