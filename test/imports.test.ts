/**
 * Imports point down: dependency-cruiser checks the sources against the layer rules of .dependency-cruiser.cjs (no
 * circle; protocol/ at the bottom; engines knowing no transport; the client its own library; ...), type-only imports
 * included. A fixture that breaks two rules shows the check can fail.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.resolve(import.meta.dirname, '..');
const test = suite('imports');

function depcruise(cwd: string, ...sources: string[]): { code: number | null; output: string } {
  const bin = path.join(root, 'node_modules/.bin/depcruise');
  const result = spawnSync(bin, ['--config', path.join(root, '.dependency-cruiser.cjs'), '-T', 'err', ...sources], { cwd, encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

test('the server, the client and the routers: every import points down, and none goes round in a circle', () => {
  const { code, output } = depcruise(root, 'src/**/*.ts', 'routers/*.ts');
  assert.is(code, 0, output);
  assert.match(output, /no dependency violations found \((\d{3,}) modules/, output);
});

test('a protocol module that imports a session, which imports it back, breaks two rules', () => {
  const { code, output } = depcruise(path.join(root, 'test/fixtures/layers'), 'src/**/*.ts');
  assert.is.not(code, 0);
  assert.match(output, 'protocol-is-the-bottom: src/protocol/frames.ts → src/session/session.ts');
  assert.match(output, 'no-circular');
});

test.run();
