/**
 * Regression test for wrtc's send-versus-remote-close race (docs/DESIGN.md, "wrtc's send race"): a peer that sends while
 * the remote peer closes abruptly used to die with SIGSEGV in RTCDataChannel::Send, about 20 times in 100 cycles.
 * Bare wrtc on both sides, in two processes of their own (test/fixtures/send-race-peer.ts), over loopback.
 *
 * Against the binary as published, where it crashes:
 *   WRTC_BINARY=original node --import tsx test/wrtc-send-race.test.ts
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from './fixtures/dev-server.ts';
import { patchWrtc } from '../src/peer/wrtc-patch.ts';

const CYCLES = Number(process.env.SEND_RACE_CYCLES ?? 100);
const CYCLE_TIMEOUT_MS = 15_000;
const PEER = path.join(import.meta.dirname, 'fixtures/send-race-peer.ts');

const race = suite('wrtc send race');

type Reply = { offer: string } | { answer: string } | { closed: number; opened: boolean; refused: boolean };

/** A repro process and the replies it has sent, read one at a time. */
class Peer {
  readonly child: ChildProcess;
  readonly exited: Promise<NodeJS.Signals | number | null>;
  #replies: Reply[] = [];
  #wake: (() => void) | undefined;

  constructor(role: 'sender' | 'closer') {
    this.child = fork(PEER, [role], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (reply: Reply) => {
      this.#replies.push(reply);
      this.#wake?.();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(signal ?? code)));
  }

  send(message: unknown): void {
    this.child.send(message as never);
  }

  async next<K extends string>(key: K): Promise<Extract<Reply, Record<K, unknown>>> {
    for (;;) {
      const at = this.#replies.findIndex((reply) => key in reply);
      if (at >= 0) return this.#replies.splice(at, 1)[0] as Extract<Reply, Record<K, unknown>>;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

race('the wrtc binary wrtc loads is the patched copy', () => {
  const outcome = patchWrtc();
  assert.ok(outcome.status === 'patched' || outcome.status === 'already patched', JSON.stringify(outcome));
});

race(`${CYCLES} cycles of a peer closing abruptly while the other sends: the sender never crashes`, async () => {
  const closer = new Peer('closer');
  let sender = new Peer('sender');
  const crashes: string[] = [];
  let opened = 0;
  let refused = 0;
  try {
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const current = sender;
      const died = current.exited.then((how) => ({ died: how }));
      const outcome = await withTimeout(
        Promise.race([
          died,
          (async () => {
            current.send('offer');
            const { offer } = await current.next('offer');
            closer.send({ offer });
            const { answer } = await closer.next('answer');
            current.send({ answer });
            const closed = await current.next('closed');
            if (closed.opened) opened++;
            if (closed.refused) refused++;
            return { died: undefined };
          })(),
        ]),
        CYCLE_TIMEOUT_MS,
        `cycle ${cycle} to end`,
      );
      if (outcome.died !== undefined) {
        crashes.push(`cycle ${cycle}: ${outcome.died}`);
        sender = new Peer('sender');
      }
    }
  } finally {
    closer.stop();
    sender.stop();
  }
  assert.equal(crashes, [], `the sender died ${crashes.length} times in ${CYCLES} cycles`);
  assert.is(opened, CYCLES, 'every channel opened before the close');
  // A send that found its channel closed is the race, survived; without one the repro would prove nothing.
  assert.ok(refused > 0, `no send met the close in ${CYCLES} cycles`);
});

race.run();
