/**
 * Native messaging host mode (`tsx src/main.ts --native-host`): Chrome starts this process for a
 * `chrome.runtime.connectNative` port and talks to it over stdin/stdout. Every request goes through the app's
 * Dispatcher, as on a data channel; stdout carries protocol frames and nothing else (logs go to stderr).
 */
import type { App } from '../app.ts';
import type { Config } from '../config.ts';
import { Caller } from '../dispatch.ts';
import { AppError } from '../errors.ts';
import { log } from '../log.ts';
import { ANONYMOUS_IDENTITY } from '../security/auth.ts';
import { MessageRate } from '../security/rate-limit.ts';
import { decodeRequestObject, errorFrame, requestIdOf, undeliverable, type ErrorFrame } from '../protocol/frames.ts';
import { shutdownNotice } from '../protocol/events.ts';
import { decodeUtf8, utf8Length } from '../protocol/framing.ts';
import { decodeEnvelope, envelopeAnswer, isEnvelope } from './envelope.ts';
import { fragmentJson } from './fragments.ts';
import { encodeNativeMessage, LENGTH_PREFIX_BYTES, MAX_BROWSER_MESSAGE_BYTES, MAX_HOST_MESSAGE_BYTES, NativeMessageReader } from './framing.ts';

/**
 * Chrome kills a host 2 s after closing its pipes: when stdin ends, requests in flight get this long to answer
 * before they are cancelled, so the store is closed cleanly in time.
 */
const PORT_CLOSED_GRACE_MS = 500;
/** After the grace, how long cancelled requests get to write their final answers. */
const CANCEL_FLUSH_MS = 500;

export interface NativeHostOptions {
  config: Config;
  app: App;
  /** Closes what was opened for the app (the store), after the last answer is written. */
  close(): Promise<void>;
  /** Chrome's arguments: the caller's origin, and on Windows `--parent-window=<handle>`. Only logged. */
  args?: readonly string[];
}

type RawWrite = (bytes: Uint8Array, done: () => void) => void;

/**
 * Serves one Chrome port until stdin ends (Chrome closed the port) or SIGTERM/SIGINT: in-flight requests get the
 * shutdown grace to answer, the rest are cancelled and answered. Resolves with the exit code.
 */
export function runNativeHost({ config, app, close, args = [] }: NativeHostOptions): Promise<number> {
  const out = frameWriter(claimStdout(), app);
  const caller = new Caller('native', ANONYMOUS_IDENTITY, config.maxInFlightPerSession);
  const reader = new NativeMessageReader(Math.min(config.maxMessageBytes, MAX_BROWSER_MESSAGE_BYTES));
  const messageRate = new MessageRate(config);

  const receive = (bytes: Uint8Array) => {
    app.stats.traffic.messagesIn++;
    app.stats.traffic.bytesIn += LENGTH_PREFIX_BYTES + bytes.length;
    const limited = messageRate.take();
    const parsed = parseMessage(bytes);
    if (parsed instanceof AppError) return out.send(errorFrame(parsed));
    // Envelope requests answer in the envelope's shape, whole: their callers expect no chunk or event frames.
    const envelope = isEnvelope(parsed);
    const decoded = envelope ? decodeEnvelope(parsed, caller.assignRequestId) : decodeRequestObject(parsed, caller.assignRequestId);
    const answer = (frame: Record<string, unknown> | ErrorFrame) => out.send(envelope ? envelopeAnswer(frame) : frame);
    if (limited) return answer(errorFrame(limited, requestIdOf(decoded)));
    if (!decoded.ok) return answer(errorFrame(decoded.error, decoded.requestId));
    void app.dispatcher
      .execute(caller, decoded.request, { emit: envelope ? undefined : out.send })
      .then(({ frame, attachment }) => {
        // JSON only: a handler's binary part (echo returns the request's, which cannot come this way) is dropped.
        if (attachment) log.warn('binary attachment dropped: native messaging carries JSON only', { request_id: decoded.request.requestId });
        answer(frame);
      })
      .catch((error) => answer(undeliverable(error, decoded.request.requestId)));
  };

  return new Promise<number>((resolve) => {
    let stopping: Promise<void> | undefined;
    const stop = (why: string, graceMs: number, cancellation: AppError) => {
      stopping ??= (async () => {
        log.info(`native host stopping: ${why}`, { in_flight: caller.inFlight.size, grace_ms: graceMs });
        app.dispatcher.stopAccepting();
        await app.dispatcher.drainOrCancel(graceMs, () => [caller], cancellation, CANCEL_FLUSH_MS);
        await out.flush();
        await app.close(0);
        await close();
      })().then(
        () => resolve(0),
        (error: unknown) => {
          log.error('native host did not stop cleanly', { error });
          resolve(1);
        },
      );
    };

    // A closed port cancels its requests, as a closed data channel does.
    const portClosed = new AppError('cancelled', 'The native messaging port closed');
    const portClosedGraceMs = Math.min(config.shutdownGraceMs, PORT_CLOSED_GRACE_MS);
    const stdin = process.stdin;
    stdin.on('data', (chunk: Buffer) => {
      for (const input of reader.push(chunk)) {
        if (input.kind === 'message') receive(input.bytes);
        else out.send(errorFrame(input.error));
      }
    });
    stdin.once('end', () => {
      const truncated = reader.end();
      if (truncated) out.send(errorFrame(truncated));
      stop('stdin ended (the port closed)', portClosedGraceMs, portClosed);
    });
    stdin.once('error', (error) => {
      log.warn('stdin failed', { error });
      stop('stdin failed', portClosedGraceMs, portClosed);
    });

    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) process.exit(1); // a second signal means now
      signalled = true;
      // As on a data channel: the caller learns of the shutdown while its requests still have the grace to finish.
      out.send(shutdownNotice(config.shutdownGraceMs));
      stop(signal, config.shutdownGraceMs, new AppError('shutting_down', 'Server shut down before the request finished'));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    log.info('native host ready', { caller: args.find((arg) => arg.startsWith('chrome-extension://')) ?? '(no origin given)' });
  });
}

/** A message's JSON value, or the `invalid_json` error that answers it. */
function parseMessage(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decodeUtf8(bytes, 'Message'));
  } catch (cause) {
    return cause instanceof AppError ? cause : new AppError('invalid_json', `Message is not valid JSON: ${(cause as Error).message}`);
  }
}

/**
 * Takes stdout for protocol frames alone: any other write to it (a dependency's console.log) lands on stderr
 * instead of corrupting the stream. Returns the real write.
 */
function claimStdout(): RawWrite {
  const stdout = process.stdout;
  const write = stdout.write.bind(stdout);
  stdout.write = process.stderr.write.bind(process.stderr) as typeof stdout.write;
  // Chrome closing its end turns writes into EPIPE: nobody is left to answer, so drop them.
  stdout.on('error', (error) => log.warn('stdout closed', { error }));
  return (bytes, done) => {
    if (stdout.destroyed) return done();
    write(bytes, () => done());
  };
}

/** Writes frames as native messages, a frame longer than Chrome takes from a host as fragment frames. */
function frameWriter(write: RawWrite, app: App) {
  let nextMessageId = 0;
  let written: Promise<void> = Promise.resolve();
  const sendMessage = (json: string) => {
    const bytes = encodeNativeMessage(json);
    app.stats.traffic.messagesOut++;
    app.stats.traffic.bytesOut += bytes.length;
    written = new Promise((resolve) => write(bytes, resolve));
  };
  return {
    send: (frame: object): void => {
      const json = JSON.stringify(frame);
      if (json.length <= MAX_HOST_MESSAGE_BYTES / 3 || utf8Length(json) <= MAX_HOST_MESSAGE_BYTES) return sendMessage(json);
      for (const fragment of fragmentJson(json, ++nextMessageId, MAX_HOST_MESSAGE_BYTES)) sendMessage(fragment);
    },
    /** Resolves once everything sent so far was handed to the pipe. */
    flush: () => written,
  };
}
