/**
 * docs/CONFIGURATION.md's table is what operators read to set the server up: it names every variable the config
 * reads (src/config.ts ENV_VARS), and none it does not.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ENV_VARS } from '../src/config.ts';

const test = suite('configuration docs');
/** Read outside the config, by src/log.ts, before anything else runs. */
const READ_ELSEWHERE = ['LOG_LEVEL'];

test('docs/CONFIGURATION.md lists every environment variable the server reads, and only those', () => {
  const page = readFileSync(path.join(import.meta.dirname, '../docs/CONFIGURATION.md'), 'utf8');
  const rows = page.split('\n').filter((line) => line.startsWith('| `'));
  const documented = rows.flatMap((row) => [...row.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => match[1]));
  const read = Object.values(ENV_VARS);
  assert.equal(read.filter((name) => !documented.includes(name)), [], 'read but not documented');
  assert.equal(documented.filter((name) => !read.includes(name as never) && !READ_ELSEWHERE.includes(name)), [], 'documented but not read');
});

test.run();
