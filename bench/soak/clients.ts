/**
 * The soak's client processes (bench/soak/client.ts), reused from cycle to cycle. A killed one is replaced in the
 * background, so the next cycle rarely waits for a process to start.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { FromClient, ToClient } from './client.ts';

type Cycle = Extract<ToClient, { type: 'cycle' }>;
export type Outcome =
  | { kind: 'closed'; chunks: number }
  | { kind: 'aborted'; chunks: number }
  | { kind: 'killed'; sessionId: string }
  | { kind: 'failed'; error: string };

/** A cycle's client gives up on a server that stops answering well before this. */
const CYCLE_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 30_000;

class ClientProcess {
  private reply: ((message: FromClient) => void) | undefined;
  readonly exited: Promise<string>;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: FromClient) => this.reply?.(message));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
    void this.exited.then((how) => this.reply?.({ type: 'failed', cycle: -1, error: `client process ended (${how})` }));
  }

  static start(): Promise<ClientProcess> {
    const child = fork(new URL('./client.ts', import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const client = new ClientProcess(child);
    return client.next(START_TIMEOUT_MS).then((message) => {
      if (message.type === 'ready') return client;
      child.kill('SIGKILL');
      throw new Error(`client did not start: ${'error' in message ? message.error : message.type}`);
    });
  }

  /** The next message (or the process's end, as `failed`), within `timeoutMs`. */
  next(timeoutMs: number): Promise<FromClient> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ type: 'failed', cycle: -1, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
      const done = (message: FromClient) => {
        clearTimeout(timer);
        this.reply = undefined;
        resolve(message);
      };
      this.reply = done;
    });
  }

  send(message: ToClient): void {
    this.child.send(message);
  }

  kill(): Promise<string> {
    this.child.kill('SIGKILL');
    return this.exited;
  }

  /** Asks it to leave, and kills it if it has not within a few seconds. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export class ClientPool {
  private readonly ready: ClientProcess[] = [];
  private readonly starting = new Set<Promise<ClientProcess>>();
  started = 0;

  /** Runs one cycle on a free client process; a cycle with `killAfterChunks` ends with its process SIGKILLed. */
  async cycle(cycle: Cycle): Promise<Outcome> {
    const client = await this.take();
    client.send(cycle);
    const reply = await client.next(CYCLE_TIMEOUT_MS);
    if (reply.type === 'streaming') {
      await client.kill();
      this.spawn();
      return { kind: 'killed', sessionId: reply.sessionId };
    }
    if (reply.type === 'done' || reply.type === 'aborted') {
      this.ready.push(client);
      return { kind: reply.type === 'done' ? 'closed' : 'aborted', chunks: reply.chunks };
    }
    // A failed cycle's process may be in any state: do not reuse it.
    await client.stop();
    this.spawn();
    return { kind: 'failed', error: reply.type === 'failed' ? reply.error : `unexpected ${reply.type}` };
  }

  /**
   * Starts a cycle and resolves once its stream is under way, with its process held: `finish` waits for the
   * cycle's end, however it comes, and ends the process; `kill` SIGKILLs it.
   */
  async streaming(cycle: Cycle): Promise<{ finish(): Promise<Outcome>; kill(): Promise<string> }> {
    const client = await this.take();
    client.send(cycle);
    const reply = await client.next(CYCLE_TIMEOUT_MS);
    if (reply.type !== 'streaming') {
      await client.stop();
      throw new Error(`the stream did not start: ${reply.type === 'failed' ? reply.error : reply.type}`);
    }
    const end = client.next(CYCLE_TIMEOUT_MS);
    return {
      async finish() {
        const reply = await end;
        await client.stop();
        return reply.type === 'done' ? { kind: 'closed', chunks: reply.chunks } : { kind: 'failed', error: reply.type === 'failed' ? reply.error : reply.type };
      },
      kill: () => client.kill(),
    };
  }

  /** Ends every client process. */
  async close(): Promise<void> {
    const starting = await Promise.allSettled(this.starting);
    this.starting.clear();
    const all = [...this.ready.splice(0), ...starting.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))];
    await Promise.all(all.map((client) => client.stop()));
  }

  private take(): Promise<ClientProcess> {
    const ready = this.ready.pop();
    if (ready) return Promise.resolve(ready);
    const [starting] = this.starting;
    if (starting) {
      this.starting.delete(starting);
      return starting;
    }
    return this.start();
  }

  private start(): Promise<ClientProcess> {
    return ClientProcess.start().then((client) => {
      this.started++;
      return client;
    });
  }

  private spawn(): void {
    const starting = this.start();
    this.starting.add(starting);
    // Unclaimed until a cycle or close() takes it; its failure then surfaces there.
    starting.catch(() => {});
  }
}
