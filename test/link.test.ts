import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError } from '../src/errors.ts';
import { INNER_BINARY, encodeEnvelope, fragment } from '../src/protocol/framing.ts';
import { ChannelLink, type DataChannelLike, type Inbound, type LinkOptions } from '../src/protocol/link.ts';
import { connectedChannelPair, type ChannelPair } from './fixtures/wrtc-pair.ts';
import { appError } from './fixtures/errors.ts';

const MiB = 1024 * 1024;

class Inbox {
  readonly messages: Inbound[] = [];
  readonly errors: AppError[] = [];
  closed = false;

  /** Waits until `ready()` holds, polling, so a lost message fails the test instead of hanging it. */
  async until(ready: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  untilMessages(count: number): Promise<void> {
    return this.until(() => this.messages.length >= count, `${count} messages (have ${this.messages.length})`);
  }
}

interface Linked {
  pair: ChannelPair;
  maxMessageSize: number;
  a: ChannelLink;
  b: ChannelLink;
  inA: Inbox;
  inB: Inbox;
}

function attach(channel: DataChannelLike, inbox: Inbox, maxMessageSize: number, options: Partial<LinkOptions> = {}) {
  return new ChannelLink(channel, {
    maxMessageSize,
    onMessage: (message) => inbox.messages.push(message),
    onProtocolError: (error) => inbox.errors.push(error),
    onClose: () => (inbox.closed = true),
    ...options,
  });
}

/** Runs `body` with links on both ends of a fresh wrtc pair, and always closes the peer connections. */
async function withLinks(body: (linked: Linked) => Promise<void>, options: Partial<LinkOptions> = {}): Promise<void> {
  const pair = await connectedChannelPair();
  try {
    const maxMessageSize = pair.pcA.sctp?.maxMessageSize ?? 262144;
    const inA = new Inbox();
    const inB = new Inbox();
    const a = attach(pair.a, inA, maxMessageSize, options);
    const b = attach(pair.b, inB, maxMessageSize, options);
    await body({ pair, maxMessageSize, a, b, inA, inB });
  } finally {
    pair.close();
  }
}

function patterned(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return bytes;
}

/** Compares bytes without letting uvu print a multi-MiB diff. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.is(at, -1, `${what}: first difference at ${at}`);
}

function assertText(message: Inbound | undefined, text: string, what: string): void {
  assert.ok(message?.kind === 'text', `${what}: not a text message`);
  assert.ok(message.text === text, `${what}: text differs (length ${message.text.length} vs ${text.length})`);
}

function assertBinary(message: Inbound | undefined, header: string, payload: Uint8Array, what: string): void {
  assert.ok(message?.kind === 'binary', `${what}: not a binary message`);
  assert.is(message.header, header, `${what}: header`);
  sameBytes(message.payload, payload, `${what}: payload`);
}


const Transfer = suite('ChannelLink transfer over wrtc');

Transfer('wrtc reports a max message size the link can fragment to', async () => {
  await withLinks(async ({ maxMessageSize }) => {
    assert.is(maxMessageSize, 262144);
  });
});

Transfer('5 MiB text and a 5 MiB binary envelope arrive intact in each direction', async () => {
  await withLinks(async ({ a, b, inA, inB }) => {
    const textAB = '{"to":"b","s":"' + 'aé日😀'.repeat(550_000) + '"}';
    const textBA = '{"to":"a","s":"' + 'z€'.repeat(1_000_000) + '"}';
    const payloadAB = patterned(5 * MiB, 1);
    const payloadBA = patterned(5 * MiB + 17, 2);
    assert.ok(new TextEncoder().encode(textAB).length > 5 * MiB);
    await Promise.all([
      a.sendText(textAB),
      a.sendBinary('{"id":"ab"}', payloadAB),
      b.sendText(textBA),
      b.sendBinary('{"id":"ba"}', payloadBA),
    ]);
    await Promise.all([inB.untilMessages(2), inA.untilMessages(2)]);
    assertText(inB.messages[0], textAB, 'a→b text');
    assertBinary(inB.messages[1], '{"id":"ab"}', payloadAB, 'a→b binary');
    assertText(inA.messages[0], textBA, 'b→a text');
    assertBinary(inA.messages[1], '{"id":"ba"}', payloadBA, 'b→a binary');
    assert.equal(inA.errors, []);
    assert.equal(inB.errors, []);
  });
});

Transfer('messages exactly at, and one byte over, the max message size both arrive', async () => {
  await withLinks(async ({ a, inB, maxMessageSize }) => {
    const atMax = 'x'.repeat(maxMessageSize);
    const overMax = 'y'.repeat(maxMessageSize + 1);
    const envelopeAtMax = patterned(maxMessageSize - encodeEnvelope('{}', new Uint8Array(0)).length);
    await Promise.all([a.sendText(atMax), a.sendText(overMax), a.sendBinary('{}', envelopeAtMax)]);
    await inB.untilMessages(3);
    assertText(inB.messages[0], atMax, 'at max');
    assertText(inB.messages[1], overMax, 'over max');
    assertBinary(inB.messages[2], '{}', envelopeAtMax, 'envelope at max');
  });
});

Transfer('200 small messages arrive in order', async () => {
  await withLinks(async ({ a, inB }) => {
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      sends.push(i % 5 === 4 ? a.sendBinary(`{"i":${i}}`, patterned(i)) : a.sendText(`{"i":${i}}`));
    }
    await Promise.all(sends);
    await inB.untilMessages(200);
    inB.messages.forEach((message, i) => {
      const header = message.kind === 'text' ? message.text : message.header;
      assert.is(header, `{"i":${i}}`);
    });
  });
});

Transfer('small sends issued after a large one do not overtake it', async () => {
  await withLinks(async ({ a, inB }) => {
    const big = patterned(3 * MiB);
    const bigText = 'q'.repeat(2 * MiB);
    const sends = [
      a.sendText('"first"'),
      a.sendBinary('{"big":1}', big),
      a.sendText('"after big binary"'),
      a.sendText(bigText),
      a.sendBinary('{"small":1}', patterned(10)),
      a.sendText('"last"'),
    ];
    await Promise.all(sends);
    await inB.untilMessages(6);
    assertText(inB.messages[0], '"first"', 'first');
    assertBinary(inB.messages[1], '{"big":1}', big, 'big binary');
    assertText(inB.messages[2], '"after big binary"', 'third');
    assertText(inB.messages[3], bigText, 'big text');
    assertBinary(inB.messages[4], '{"small":1}', patterned(10), 'small binary');
    assertText(inB.messages[5], '"last"', 'last');
  });
});

Transfer('stats count messages and wire bytes the same on both ends', async () => {
  await withLinks(async ({ a, b, inB }) => {
    await Promise.all([a.sendText('{"é":1}'), a.sendBinary('{}', patterned(MiB)), a.sendText('r'.repeat(300_000))]);
    await inB.untilMessages(3);
    assert.is(a.stats.messagesOut, 3);
    assert.is(b.stats.messagesIn, 3);
    assert.is(b.stats.bytesIn, a.stats.bytesOut);
    assert.ok(a.stats.bytesOut > MiB + 300_000);
  });
});

Transfer.run();

const Backpressure = suite('ChannelLink backpressure');

Backpressure('bufferedAmount stays within highWaterMark plus one frame while sending 20 MiB', async () => {
  await withLinks(async ({ pair, a, inB, maxMessageSize }) => {
    const highWaterMark = MiB;
    let peak = 0;
    let sends = 0;
    const send = pair.a.send.bind(pair.a) as (data: string | ArrayBufferView<ArrayBuffer>) => void;
    pair.a.send = ((data: string | ArrayBufferView<ArrayBuffer>) => {
      send(data);
      sends++;
      peak = Math.max(peak, pair.a.bufferedAmount);
    }) as typeof pair.a.send;

    const total = 20 * MiB;
    const parts = 20;
    const started = performance.now();
    const sent: Promise<void>[] = [];
    for (let i = 0; i < parts; i++) sent.push(a.sendBinary(`{"part":${i}}`, patterned(total / parts, i)));
    await Promise.all(sent);
    await inB.untilMessages(parts);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `    20 MiB in ${(seconds * 1000).toFixed(0)} ms: ${(total / 1e6 / seconds).toFixed(1)} MB/s, ` +
        `${sends} sends, peak bufferedAmount ${peak}`,
    );
    assert.ok(peak <= highWaterMark + maxMessageSize, `peak ${peak}`);
    assert.ok(peak > 0, 'bufferedAmount was never sampled above 0: the test proves nothing');
    inB.messages.forEach((message, i) => assertBinary(message, `{"part":${i}}`, patterned(total / parts, i), `part ${i}`));
  });
});

Backpressure('sends queued behind a full buffer reject with cancelled when the channel closes', async () => {
  await withLinks(async ({ pair, a }) => {
    const sent = [];
    for (let i = 0; i < 40; i++) sent.push(a.sendBinary('{}', patterned(MiB)));
    pair.close();
    const results = await Promise.allSettled(sent);
    const rejected = results.filter((r) => r.status === 'rejected');
    assert.ok(rejected.length > 0, 'nothing was still queued when the channel closed');
    for (const r of rejected) {
      assert.instance(r.reason, AppError);
      assert.is((r.reason as AppError).code, 'cancelled');
    }
  });
});

Backpressure('flush waits until every queued send has been handed over and bufferedAmount is 0', async () => {
  await withLinks(async ({ pair, a, inB }) => {
    let handedOver = 0;
    const sent = [a.sendBinary('{"n":1}', patterned(4 * MiB)), a.sendText('"tail"')].map((p) => p.then(() => handedOver++));
    assert.ok(pair.a.bufferedAmount > 0 || handedOver < 2, 'nothing was pending: the test proves nothing');
    await a.flush(10_000);
    assert.is(handedOver, 2);
    assert.is(pair.a.bufferedAmount, 0);
    assert.ok(a.isOpen);
    await Promise.all(sent);
    await inB.untilMessages(2);
    assertText(inB.messages[1], '"tail"', 'last message');
  });
});

Backpressure('flush gives up at its timeout and resolves at once on a closed link', async () => {
  await withLinks(async ({ a }) => {
    const sent = a.sendBinary('{}', patterned(8 * MiB));
    const started = Date.now();
    await a.flush(20);
    assert.ok(Date.now() - started < 500, 'flush outlived its timeout');
    assert.ok(a.channel.bufferedAmount > 0, 'buffer drained too fast to show the timeout');
    a.close();
    await a.flush(60_000);
    await sent.catch(() => {});
  });
});

Backpressure('on a channel with bufferedamountlow, a paused send goes out when the event fires', async () => {
  const sent: unknown[] = [];
  const channel: DataChannelLike = {
    label: 'fake',
    readyState: 'open',
    bufferedAmount: 0,
    binaryType: 'blob',
    bufferedAmountLowThreshold: 0,
    onbufferedamountlow: null,
    send(data) {
      sent.push(data);
      (this as { bufferedAmount: number }).bufferedAmount += (data as string).length;
    },
    close() {},
    onmessage: null,
    onclose: null,
  };
  const link = attach(channel, new Inbox(), 262144, { highWaterMark: 100, lowWaterMark: 50, pollIntervalMs: 60_000 });
  assert.is(channel.bufferedAmountLowThreshold, 50);
  const texts = ['a', 'b', 'c'].map((letter) => JSON.stringify(letter.repeat(58)));
  const all = Promise.all(texts.map((text) => link.sendText(text)));
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(sent.length, 2, 'the third waits: 120 bytes buffered, over the high water mark');
  (channel as { bufferedAmount: number }).bufferedAmount = 40;
  channel.onbufferedamountlow!(new Event('bufferedamountlow'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(sent, texts);
  await all;
});

Backpressure.run();

const Closed = suite('ChannelLink on a closed channel');

Closed('sending after the peer connection closed rejects with cancelled and never throws synchronously', async () => {
  await withLinks(async ({ pair, a, inA }) => {
    pair.close();
    let text: Promise<void> | undefined;
    let binary: Promise<void> | undefined;
    let big: Promise<void> | undefined;
    try {
      text = a.sendText('"late"');
      binary = a.sendBinary('{}', patterned(10));
      big = a.sendText('w'.repeat(MiB));
    } catch (error) {
      assert.unreachable(`send threw synchronously: ${error}`);
    }
    for (const promise of [text!, binary!, big!]) {
      const error = await appError(promise);
      assert.is(error.code, 'cancelled');
      assert.is(error.message, 'data channel closed');
    }
    assert.not.ok(a.isOpen);
    await inA.until(() => inA.closed, 'onClose');
  });
});

Closed('link.close() makes later sends reject and reports onClose on both ends', async () => {
  await withLinks(async ({ a, inA, inB }) => {
    a.close();
    assert.not.ok(a.isOpen);
    assert.is((await appError(a.sendText('"x"'))).code, 'cancelled');
    await inA.until(() => inA.closed, 'onClose on the closing end');
    await inB.until(() => inB.closed, 'onClose on the remote end');
  });
});

Closed('a send that throws InvalidStateError while readyState reads open rejects and marks the link closed', async () => {
  const failing: DataChannelLike = {
    label: 'fake',
    readyState: 'open',
    bufferedAmount: 0,
    binaryType: 'blob',
    send() {
      throw new DOMException("RTCDataChannel.readyState is not 'open'", 'InvalidStateError');
    },
    close() {},
    onmessage: null,
    onclose: null,
  };
  const link = attach(failing, new Inbox(), 262144);
  assert.is(failing.binaryType, 'arraybuffer');
  const error = await appError(link.sendText('"x"'));
  assert.is(error.code, 'cancelled');
  assert.not.ok(link.isOpen);
  assert.is((await appError(link.sendText('"y"'))).code, 'cancelled');
});

Closed.run();

const Connecting = suite('ChannelLink on a connecting channel');

Connecting('sends made before the channel opens go out once it opens', async () => {
  const inbox = new Inbox();
  let sent: Promise<unknown> | undefined;
  const pair = await connectedChannelPair({
    onChannel(side, channel) {
      if (side === 'b') return void attach(channel, inbox, 262144);
      assert.is(channel.readyState, 'connecting');
      const link = attach(channel, new Inbox(), 262144);
      sent = Promise.all([link.sendText('"early"'), link.sendBinary('{"n":2}', patterned(MiB))]);
    },
  });
  try {
    await sent;
    await inbox.untilMessages(2);
    assertText(inbox.messages[0], '"early"', 'early text');
    assertBinary(inbox.messages[1], '{"n":2}', patterned(MiB), 'early binary');
  } finally {
    pair.close();
  }
});

Connecting.run();

const Peer = suite('ChannelLink with a misbehaving peer');

Peer('garbage binary frames call onProtocolError and the next good message still arrives', async () => {
  await withLinks(async ({ pair, a, inA }) => {
    const raw = pair.b;
    raw.send(new Uint8Array([0x07, 1, 2, 3]));
    raw.send(new ArrayBuffer(0));
    raw.send(new Uint8Array([0x01, 0, 0])); // truncated fragment header
    raw.send(new Uint8Array([0x02, 0, 0, 0, 99, 1])); // envelope header longer than the frame
    raw.send(new Uint8Array([0x02, 0, 0, 0, 2, 0xc3, 0x28])); // envelope header not UTF-8
    raw.send('"good text"');
    raw.send(encodeEnvelope('{"good":true}', patterned(100)));
    await inA.untilMessages(2);
    assert.equal(
      inA.errors.map((e) => e.code),
      ['invalid_request', 'invalid_request', 'invalid_request', 'invalid_request', 'invalid_json'],
    );
    assertText(inA.messages[0], '"good text"', 'text after garbage');
    assertBinary(inA.messages[1], '{"good":true}', patterned(100), 'envelope after garbage');
    assert.ok(a.isOpen);
  });
});

Peer('a fragmented message over maxMessageBytes is one payload_too_large error, then the link carries on', async () => {
  await withLinks(
    async ({ a, b, inB }) => {
      await a.sendBinary('{"huge":1}', patterned(3 * MiB));
      await a.sendText('"next"');
      await inB.untilMessages(1);
      assert.equal(
        inB.errors.map((e) => e.code),
        ['payload_too_large'],
      );
      assertText(inB.messages[0], '"next"', 'message after the oversized one');
      assert.ok(b.isOpen);
    },
    { maxMessageBytes: 2 * MiB },
  );
});

Peer('a fragment whose message envelope is malformed is reported once the message completes', async () => {
  await withLinks(async ({ pair, inA, maxMessageSize }) => {
    const notAnEnvelope = patterned(maxMessageSize * 2);
    notAnEnvelope[0] = 0x09;
    for (const frame of fragment(notAnEnvelope, INNER_BINARY, 5, maxMessageSize)) pair.b.send(frame);
    pair.b.send('"after"');
    await inA.untilMessages(1);
    assert.equal(
      inA.errors.map((e) => e.code),
      ['invalid_request'],
    );
    assertText(inA.messages[0], '"after"', 'after');
  });
});

Peer('an onMessage handler that throws is reported as internal and later messages still arrive', async () => {
  await withLinks(async ({ pair, a }) => {
    const inbox = new Inbox();
    let calls = 0;
    attach(pair.b, inbox, 262144, {
      onMessage: (message) => {
        calls++;
        if (calls === 1) throw new Error('handler bug');
        inbox.messages.push(message);
      },
    });
    await a.sendText('"boom"');
    await a.sendText('"fine"');
    await inbox.untilMessages(1);
    assert.equal(
      inbox.errors.map((e) => e.code),
      ['internal'],
    );
    assertText(inbox.messages[0], '"fine"', 'after the throwing handler');
  });
});

Peer.run();
