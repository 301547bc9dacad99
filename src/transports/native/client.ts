/**
 * Drives the native host as Chrome does, for tests and benchmarks: spawns the built host (`dist/native-host.mjs`,
 * as the installed launcher runs it), writes native messages to its stdin, and reads its stdout as Chrome would,
 * refusing any message over Chrome's 1 MiB and reassembling fragment frames.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { builtPath, repositoryRoot } from '../../paths.ts';
import { FragmentAssembler, isFragmentFrame } from './fragments.ts';
import { encodeNativeMessage, MAX_HOST_MESSAGE_BYTES, NativeMessageReader } from './framing.ts';
import { decodeUtf8 } from '../../protocol/framing.ts';

export type Frame = Record<string, unknown>;

export interface SpawnOptions {
  /** Added to this process's environment: `TABAGENT_DATA_DIR` (or `TABAGENT_NATIVE_SOCKET`) names the server. */
  env?: Record<string, string>;
  /** What Chrome passes, e.g. the caller's origin. */
  args?: string[];
}

export interface NativeHostClient {
  readonly pid: number;
  /** Sends a request and resolves with its final answer (an error frame too); rejects only if the host goes away. */
  request(frame: Frame): Promise<Frame>;
  /** As `request`, calling `onFrame` with each chunk and event of the request first. */
  stream(frame: Frame, onFrame: (frame: Frame) => void): Promise<Frame>;
  /** Sends one frame, answered or not. */
  send(frame: Frame): void;
  /** Writes bytes as they are: for malformed input. */
  sendRaw(bytes: Uint8Array): void;
  /** Every frame the host sends, fragments reassembled; returns the unsubscribe. */
  onFrame(listener: (frame: Frame) => void): () => void;
  /** The next frame matching `match`; register it before sending what it answers. */
  next(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Each message as it came over stdout, before reassembly: its size (prefix excluded) and its JSON. */
  onWire(listener: (bytes: number, frame: Frame) => void): () => void;
  /** Anything on stdout that is not a native message Chrome would accept (over 1 MiB, not JSON, a bad fragment). */
  readonly violations: string[];
  /** Ends stdin, as Chrome does when the port closes, and resolves with the exit code (null: killed by a signal). */
  close(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<number | null>;
  /** Bytes left on stdout after the last whole message (0 when the stream held nothing but messages). */
  leftoverBytes(): number;
  stderr(): string;
}


export async function spawnNativeHost(options: SpawnOptions = {}): Promise<NativeHostClient> {
  const host = builtPath('nativeHost');
  if (!existsSync(host)) throw new Error(`${host} is missing: run npm run build`);
  const child = spawn(process.execPath, [host, ...(options.args ?? [])], {
    cwd: repositoryRoot(),
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const stdin = child.stdin!;
  // A host that died leaves writes failing with EPIPE; `exited` reports it.
  stdin.on('error', () => {});

  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const listeners = new Set<(frame: Frame) => void>();
  const wireListeners = new Set<(bytes: number, frame: Frame) => void>();
  /** Requests awaiting their final answer, by request_id. */
  const calls = new Map<string, { onPart(frame: Frame): void; resolve(frame: Frame): void; reject(error: Error): void }>();
  /** `next` waiters, failed when the host exits. */
  const waiters = new Set<(error: Error) => void>();
  const violations: string[] = [];
  const reader = new NativeMessageReader(MAX_HOST_MESSAGE_BYTES);
  const fragments = new FragmentAssembler();

  let exitCode: number | null | undefined;
  const gone = () => new Error(`the host exited (${exitCode}) before answering; stderr:\n${stderr.slice(-2000)}`);
  void exited.then((code) => {
    exitCode = code;
    for (const call of calls.values()) call.reject(gone());
    calls.clear();
    for (const fail of [...waiters]) fail(gone());
  });

  const deliver = (frame: Frame) => {
    const id = frame.request_id;
    const call = typeof id === 'string' ? calls.get(id) : undefined;
    // Anything with the id that is not a chunk or an event is the final answer, in either frame shape.
    if (call && (frame.type === 'chunk' || frame.type === 'event')) call.onPart(frame);
    else if (call) {
      calls.delete(id as string);
      call.resolve(frame);
    }
    for (const listener of [...listeners]) listener(frame);
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    for (const input of reader.push(chunk)) {
      if (input.kind === 'error') {
        violations.push(`stdout: ${input.error.message}`);
        continue;
      }
      let frame: unknown;
      try {
        frame = JSON.parse(decodeUtf8(input.bytes, 'Host message'));
      } catch (error) {
        violations.push(`stdout: a message that is not UTF-8 JSON (${(error as Error).message}): ${input.bytes.subarray(0, 80).toString()}`);
        continue;
      }
      for (const listener of [...wireListeners]) listener(input.bytes.length, frame as Frame);
      if (!isFragmentFrame(frame)) {
        deliver(frame as Frame);
        continue;
      }
      try {
        const whole = fragments.push(frame);
        if (whole) deliver(whole);
      } catch (error) {
        violations.push(`stdout: ${(error as Error).message}`);
      }
    }
  });

  const onFrame = (listener: (frame: Frame) => void) => {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };

  const next = (match: (frame: Frame) => boolean, timeoutMs = 30_000) =>
    new Promise<Frame>((resolve, reject) => {
      if (exitCode !== undefined) return reject(gone());
      const done = (settle: () => void) => {
        clearTimeout(timer);
        off();
        waiters.delete(fail);
        settle();
      };
      const fail = (error: Error) => done(() => reject(error));
      const timer = setTimeout(() => fail(new Error(`no matching frame within ${timeoutMs} ms; stderr:\n${stderr.slice(-2000)}`)), timeoutMs);
      const off = onFrame((frame) => {
        if (match(frame)) done(() => resolve(frame));
      });
      waiters.add(fail);
    });

  const send = (frame: Frame) => void stdin.write(encodeNativeMessage(JSON.stringify(frame)));
  let nextId = 0;
  const stream = (frame: Frame, onPart: (frame: Frame) => void) =>
    new Promise<Frame>((resolve, reject) => {
      const id = String(frame.request_id ?? `c${++nextId}`);
      if (exitCode !== undefined) return reject(gone());
      if (calls.has(id)) return reject(new Error(`request_id "${id}" is already awaiting an answer`));
      calls.set(id, { onPart, resolve, reject });
      send({ ...frame, request_id: id });
    });

  return {
    pid: child.pid!,
    request: (frame) => stream(frame, () => {}),
    stream,
    send,
    sendRaw: (bytes) => void stdin.write(bytes),
    onFrame,
    next,
    onWire(listener) {
      wireListeners.add(listener);
      return () => void wireListeners.delete(listener);
    },
    violations,
    close() {
      stdin.end();
      return exited;
    },
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    exited,
    leftoverBytes: () => reader.buffered,
    stderr: () => stderr,
  };
}
