/**
 * The wrtc binary patch (src/peer/wrtc-patch.ts) on copies of an installation: it writes the patched copy where
 * wrtc's loader looks first, from the published binary only when it knows it, and touches nothing it does not know.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KNOWN_BINARIES, patchWrtc } from '../src/peer/wrtc-patch.ts';

const test = suite('wrtc patch');
const triple = `${process.platform}-${process.arch}`;
const require = createRequire(import.meta.url);
const PUBLISHED = require.resolve(`@roamhq/wrtc-${triple}/wrtc.node`);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** A node_modules with @roamhq/wrtc and its platform package holding `binary`; returns wrtc's directory. */
function installation(binary: (file: string) => void): { wrtcDir: string; published: string; target: string; cleanup(): void } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tabagent-wrtc-patch-'));
  const wrtcDir = path.join(root, 'node_modules/@roamhq/wrtc');
  const platformDir = path.join(root, `node_modules/@roamhq/wrtc-${triple}`);
  mkdirSync(wrtcDir, { recursive: true });
  mkdirSync(platformDir, { recursive: true });
  writeFileSync(path.join(wrtcDir, 'package.json'), JSON.stringify({ name: '@roamhq/wrtc', version: '0.10.0' }));
  writeFileSync(path.join(platformDir, 'package.json'), JSON.stringify({ name: `@roamhq/wrtc-${triple}`, version: '0.10.0' }));
  const published = path.join(platformDir, 'wrtc.node');
  binary(published);
  const target = path.join(wrtcDir, `build-${triple}`, 'wrtc.node');
  return { wrtcDir, published, target, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

test('a binary it does not know is left unpatched, and the outcome says what was expected', () => {
  const setup = installation((file) => writeFileSync(file, 'not the published wrtc'));
  try {
    const outcome = patchWrtc(setup.wrtcDir);
    assert.is(outcome.status, 'unrecognised');
    const known = KNOWN_BINARIES.find((k) => `${k.platform}-${k.arch}` === triple);
    if (known) assert.ok(outcome.detail?.includes(known.name) && outcome.detail.includes(known.sha256), outcome.detail);
    assert.not.ok(existsSync(path.dirname(setup.target)), 'nothing written where wrtc looks');
  } finally {
    setup.cleanup();
  }
});

test('the known binary: a patched copy where wrtc looks first, checked by its sha256, the published file untouched', () => {
  const known = KNOWN_BINARIES.find((k) => `${k.platform}-${k.arch}` === triple && k.sha256 === sha256(PUBLISHED));
  if (!known) throw new Error(`this machine's wrtc binary (${PUBLISHED}) is not one the patch knows`);
  const setup = installation((file) => copyFileSync(PUBLISHED, file));
  try {
    assert.equal(patchWrtc(setup.wrtcDir), { status: 'patched', binary: setup.target });
    assert.is(sha256(setup.target), known.patchedSha256);
    assert.is(sha256(setup.published), known.sha256, 'the published binary is unchanged');
    assert.equal(readdirSync(path.dirname(setup.target)), ['wrtc.node'], 'no temporary file left behind');
    const before = readFileSync(setup.published);
    const after = readFileSync(setup.target);
    const changed = [...after.keys()].filter((i) => after[i] !== before[i]);
    const sites = known.patches.flatMap(({ offset, to }) => Array.from({ length: to.length / 2 }, (_, i) => offset + i));
    assert.ok(changed.every((i) => sites.includes(i)), 'only the patch sites differ');
    assert.equal(patchWrtc(setup.wrtcDir), { status: 'already patched', binary: setup.target }, 'a second run changes nothing');
  } finally {
    setup.cleanup();
  }
});

test('a build of its own where wrtc looks first (one made from source, say) is left as it is', () => {
  const setup = installation((file) => copyFileSync(PUBLISHED, file));
  try {
    mkdirSync(path.dirname(setup.target));
    writeFileSync(setup.target, 'someone else\'s build');
    const outcome = patchWrtc(setup.wrtcDir);
    assert.is(outcome.status, 'unrecognised');
    assert.is(readFileSync(setup.target, 'utf8'), 'someone else\'s build');
  } finally {
    setup.cleanup();
  }
});

test.run();
