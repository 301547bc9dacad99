/**
 * bench.html: the same requests through the native messaging host (`chrome.runtime.connectNative`) and over WebRTC
 * to the dev server, timed from this extension page. `npm run bench:browser` drives it through
 * `window.runBench(options)`; the Run button runs it against the server in the settings.
 *
 * The page holds its own TabAgentClient (an extension page has RTCPeerConnection) rather than going through the
 * offscreen document's port: that port would add an extension-messaging hop to every WebRTC request that the
 * native path does not have, and both paths are then timed from the same JavaScript context.
 */
import { connect, type TabAgentClient } from '../../../src/client/index.ts';
import { FragmentAssembler, isFragmentFrame } from '../../../src/transports/native/fragments.ts';
import { loadSettings } from './settings.ts';

export interface BenchOptions {
  /** The dev server, e.g. http://127.0.0.1:8080. */
  serverUrl: string;
  /** The native messaging host's name. Default com.tabagent.host. */
  host?: string;
  /** Timed `health` round trips per transport, split over `rounds` that alternate between the two. Default 1000. */
  roundTrips?: number;
  rounds?: number;
  /** Untimed `health` requests per transport first. Default 100. */
  warmUp?: number;
  /** Timed transfers per transport (the best is reported), after an untimed quarter-size one. Default 3. */
  transfers?: number;
  /** Payload of one transfer. Default 64 MiB less 4 KiB (the server's default cap counts the envelope header). */
  transferBytes?: number;
}

interface Percentiles {
  p50_ms: number;
  p99_ms: number;
  n: number;
}

interface TransportResult {
  /** From opening the connection (native: starting the host) to its first `health` answer. */
  first_answer_ms: number;
  round_trip: Percentiles;
  /** MB/s of payload, both ways over the time (as `npm run bench`): the best of `runs`. */
  transfer: { MBps: number; runs: number[]; how: string };
}

export interface BenchResult {
  userAgent: string;
  settings: Required<Omit<BenchOptions, 'serverUrl'>>;
  native: TransportResult;
  webrtc: TransportResult;
}

type Frame = Record<string, unknown>;

const MiB = 1024 * 1024;
/** Chrome takes up to 64 MiB in one message to a host: 32 MiB is about 43 MiB as base64 in JSON. */
const NATIVE_PART_BYTES = 32 * MiB;
const FIRST_ANSWER_TIMEOUT_MS = 30_000;

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), n: samples.length };
}

/** Uint8Array.prototype.toBase64 / Uint8Array.fromBase64 where Chrome has them (140+), else btoa/atob. */
const base64 = {
  encode(bytes: Uint8Array): string {
    const native = (bytes as Uint8Array & { toBase64?: () => string }).toBase64;
    if (native) return native.call(bytes);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  },
  decode(text: string): Uint8Array {
    const native = (Uint8Array as unknown as { fromBase64?: (text: string) => Uint8Array }).fromBase64;
    if (native) return native(text);
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  },
};

/** One `connectNative` port: requests matched to answers by `request_id`, fragment frames reassembled. */
class NativePort {
  readonly #port: chrome.runtime.Port;
  readonly #assembler = new FragmentAssembler();
  readonly #pending = new Map<string, { resolve(frame: Frame): void; reject(error: Error): void }>();
  #nextId = 0;
  #closed: Error | undefined;

  constructor(name: string) {
    this.#port = chrome.runtime.connectNative(name);
    this.#port.onMessage.addListener((message: Frame) => {
      const frame = isFragmentFrame(message) ? this.#assembler.push(message) : message;
      if (!frame) return;
      const id = frame.request_id;
      const waiter = typeof id === 'string' ? this.#pending.get(id) : undefined;
      if (!waiter) return; // an event (shutting_down), or an error about a message that could not be read
      this.#pending.delete(id as string);
      if (frame.type === 'error') waiter.reject(new Error(`native ${String(frame.code)}: ${String(frame.message)}`));
      else waiter.resolve(frame);
    });
    this.#port.onDisconnect.addListener(() => {
      this.#closed = new Error(`native port closed: ${chrome.runtime.lastError?.message ?? 'the host exited'}`);
      for (const { reject } of this.#pending.values()) reject(this.#closed);
      this.#pending.clear();
    });
  }

  request(frame: Frame): Promise<Frame> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = `b${++this.#nextId}`;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.postMessage({ ...frame, request_id: id });
    });
  }

  close(): void {
    this.#port.disconnect();
  }
}

interface Session {
  request(): Promise<void>;
  transfer(payload: Uint8Array): Promise<void>;
  close(): void;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function openNative(name: string): Promise<Session> {
  const port = new NativePort(name);
  const request = async () => {
    const answer = await port.request({ action: 'health' });
    if (answer.type !== 'health') throw new Error(`native health answered ${JSON.stringify(answer).slice(0, 200)}`);
  };
  return {
    request,
    async transfer(payload) {
      for (let offset = 0; offset < payload.length; offset += NATIVE_PART_BYTES) {
        const part = payload.subarray(offset, offset + NATIVE_PART_BYTES);
        const answer = await port.request({ action: 'echo', data: base64.encode(part) });
        if (base64.decode(String(answer.data)).length !== part.length) throw new Error('native echo lost bytes');
      }
    },
    close: () => port.close(),
  };
}

async function openWebRtc(url: string): Promise<Session> {
  const client: TabAgentClient = await connect({ url, reconnect: false });
  return {
    request: async () => void (await client.request('health')),
    async transfer(payload) {
      const { attachment } = await client.call('echo', {}, { attachment: payload });
      if (attachment?.length !== payload.length) throw new Error('WebRTC echo lost bytes');
    },
    close: () => void client.close().catch(() => {}),
  };
}

async function timed(open: () => Promise<Session>, what: string): Promise<{ session: Session; ms: number }> {
  const start = performance.now();
  const session = await withTimeout(open(), FIRST_ANSWER_TIMEOUT_MS, `${what} to open`);
  await withTimeout(session.request(), FIRST_ANSWER_TIMEOUT_MS, `${what}'s first health answer`);
  return { session, ms: round(performance.now() - start, 1) };
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const settings = {
    host: options.host ?? 'com.tabagent.host',
    roundTrips: options.roundTrips ?? 1_000,
    rounds: options.rounds ?? 5,
    warmUp: options.warmUp ?? 100,
    transfers: options.transfers ?? 3,
    transferBytes: options.transferBytes ?? 64 * MiB - 4096,
  };
  const native = await timed(() => openNative(settings.host), 'the native host');
  let webrtc: Awaited<ReturnType<typeof timed>> | undefined;
  try {
    webrtc = await timed(() => openWebRtc(options.serverUrl), 'the WebRTC client');
    const sessions = { native: native.session, webrtc: webrtc.session };
    const keys = ['native', 'webrtc'] as const;

    for (const key of keys) for (let i = 0; i < settings.warmUp; i++) await sessions[key].request();
    // Rounds alternate which transport goes first, so that drift (GC, CPU frequency, other load) falls on both.
    const samples = { native: [] as number[], webrtc: [] as number[] };
    const perRound = Math.ceil(settings.roundTrips / settings.rounds);
    for (let r = 0; r < settings.rounds; r++) {
      for (const key of r % 2 ? [...keys].reverse() : keys) {
        const count = Math.min(perRound, settings.roundTrips - r * perRound);
        for (let i = 0; i < count; i++) {
          const start = performance.now();
          await sessions[key].request();
          samples[key].push(performance.now() - start);
        }
      }
    }

    // Transfers: an untimed quarter-size one first (SCTP's congestion window starts small), then the timed ones.
    const payload = new Uint8Array(settings.transferBytes).map((_, i) => i);
    const runs = { native: [] as number[], webrtc: [] as number[] };
    for (let i = -1; i < settings.transfers; i++) {
      for (const key of keys) {
        const bytes = i < 0 ? payload.subarray(0, Math.floor(payload.length / 4)) : payload;
        const start = performance.now();
        await sessions[key].transfer(bytes);
        if (i >= 0) runs[key].push(round((2 * bytes.length) / 1e6 / ((performance.now() - start) / 1000), 1));
      }
    }

    const result = (key: (typeof keys)[number], first: number, how: string): TransportResult => ({
      first_answer_ms: first,
      round_trip: percentiles(samples[key]),
      transfer: { MBps: Math.max(...runs[key]), runs: runs[key], how },
    });
    return {
      userAgent: navigator.userAgent,
      settings,
      native: result('native', native.ms, 'base64 in JSON `echo` data, in requests of 32 MiB (base64 work timed); answers in the host\'s 1 MiB fragments'),
      webrtc: result('webrtc', webrtc.ms, '`echo` with a binary attachment, answered with it'),
    };
  } finally {
    native.session.close();
    webrtc?.session.close();
  }
}

declare global {
  interface Window {
    runBench: typeof runBench;
  }
}

const out = document.getElementById('out');
const button = document.getElementById('run') as HTMLButtonElement | null;

window.runBench = async (options) => {
  if (out) out.textContent = 'running…';
  try {
    const result = await runBench(options);
    if (out) out.textContent = JSON.stringify(result, null, 2);
    return result;
  } catch (error) {
    if (out) out.textContent = String(error);
    throw error;
  }
};

button?.addEventListener('click', async () => {
  button.disabled = true;
  try {
    const { serverUrl } = await loadSettings();
    await window.runBench({ serverUrl }).catch(() => {});
  } finally {
    button.disabled = false;
  }
});
