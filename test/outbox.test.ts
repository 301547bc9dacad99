/** The resume outbox on its own: what a resuming client gets back, and the bounds on what is kept. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Outbox } from '../src/session/outbox.ts';

const test = suite('outbox');

/** Links are plain names here; each records the frames delivered to it. */
function outbox(limits = { maxBytes: 1 << 20, retentionMs: 1_000 }) {
  const delivered: Record<string, string[]> = {};
  const box = new Outbox<string>((link, frame) => (delivered[link] ??= []).push(frame.text), limits);
  return { box, delivered };
}

test('frames go live to the request\'s link while it is there, and are kept', () => {
  const { box, delivered } = outbox();
  box.open('r1', 'old');
  box.chunk('r1', 'c0');
  box.live('r1', 'progress');
  box.finish('r1', { text: 'final' });
  assert.equal(delivered.old, ['c0', 'progress', 'final']);
  assert.is(box.size, 1, 'the finished request is kept for a resume');
});

test('a resumed client gets the chunks after the ones it has, then the answer; live frames follow it', () => {
  const { box, delivered } = outbox();
  box.open('r1', 'old');
  for (const text of ['c0', 'c1', 'c2']) box.chunk('r1', text);
  box.detach('old');
  box.chunk('r1', 'c3');
  box.live('r1', 'progress while away');
  assert.equal(delivered.old, ['c0', 'c1', 'c2'], 'nothing goes to a detached link');

  assert.is(box.claim('r1', 2, 'new'), 'replayed');
  box.chunk('r1', 'c4');
  box.finish('r1', { text: 'final' });
  assert.equal(delivered.new, ['c2', 'c3', 'c4', 'final'], 'missing chunks, then live ones, then the answer; no progress replayed');
});

test('an answer that finished while the client was away is replayed in full', () => {
  const { box, delivered } = outbox();
  box.open('r1', 'old');
  box.detach('old');
  box.finish('r1', { text: 'final' });
  assert.is(box.claim('r1', 0, 'new'), 'replayed');
  assert.equal(delivered.new, ['final']);
});

test('ids never seen are unknown (to be sent again); answers dropped for space are lost (never re-run)', () => {
  const { box } = outbox({ maxBytes: 10, retentionMs: 60_000 });
  box.open('r1', 'old');
  box.finish('r1', { text: '12345678' });
  box.open('r2', 'old');
  box.finish('r2', { text: '12345678' }); // over the bound: r1, the older, goes
  assert.is(box.claim('r1', 0, 'new'), 'lost');
  assert.is(box.claim('r2', 0, 'new'), 'replayed');
  assert.is(box.claim('never-sent', 0, 'new'), 'unknown');
});

test('over the bound, a running request loses its oldest chunks; a resume then starts after the gap', () => {
  const { box, delivered } = outbox({ maxBytes: 4, retentionMs: 60_000 });
  box.open('r1', 'old');
  box.detach('old');
  for (const text of ['c0', 'c1', 'c2', 'c3']) box.chunk('r1', text);
  assert.ok(box.heldBytes <= 4);
  box.claim('r1', 0, 'new');
  assert.equal(delivered.new, ['c2', 'c3'], 'the newest chunks that fit');
});

test('finished answers go after the retention time; running requests stay', () => {
  const { box } = outbox({ maxBytes: 1 << 20, retentionMs: 1_000 });
  box.open('done', 'old');
  box.finish('done', { text: 'final' }, 0);
  box.open('running', 'old');
  box.prune(2_000);
  assert.is(box.claim('done', 0, 'new'), 'unknown');
  assert.is(box.claim('running', 0, 'new'), 'replayed');
  assert.is(box.heldBytes, 0);
});

test.run();
