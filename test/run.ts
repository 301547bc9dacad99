/**
 * `npm test`: builds the Node programs (dist/), runs every `test/**\/*.test.ts` in its own process (each file owns
 * its wrtc peers and ports), then the type-level tests (`tsc`), and ends with `N passed, N failed`.
 * `npm test -- link signaling` runs only the files whose path contains one of the words.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { buildNode } from '../scripts/build-node.ts';

const FILE_TIMEOUT_MS = 8 * 60_000;
const root = path.resolve(import.meta.dirname, '..');
const filters = process.argv.slice(2);

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : testFiles(full);
      return entry.name.endsWith('.test.ts') ? [full] : [];
    })
    .sort((a, b) => Number(a.includes('/browser/')) - Number(b.includes('/browser/')) || a.localeCompare(b));
}

function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk;
      process.stdout.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) output += `\n(killed by ${signal})`;
      if (signal) console.log(`(killed by ${signal})`);
      resolve({ code: code ?? 1, output });
    });
  });
}

/** uvu ends each file with `Total: N`, `Passed: N`, `Skipped: N`. */
function count(output: string, label: string): number | undefined {
  const match = output.match(new RegExp(`${label}:\\s+(\\d+)`));
  return match ? Number(match[1]) : undefined;
}

// Some suites run what `npm start` and Chrome run, the built programs in dist/: build them from these sources first.
await buildNode();

let passed = 0;
let failed = 0;
const failures: string[] = [];
const files = testFiles(path.join(root, 'test')).filter((file) => !filters.length || filters.some((f) => file.includes(f)));

for (const file of files) {
  const name = path.relative(root, file);
  console.log(`\n# ${name}`);
  const { code, output } = await run(process.execPath, ['--import', 'tsx', file]);
  const total = count(output, 'Total');
  const ok = count(output, 'Passed');
  const skipped = count(output, 'Skipped') ?? 0;
  if (total === undefined || ok === undefined) {
    failed++;
    failures.push(`${name} (${output.match(/killed by \w+/)?.[0] ?? `exit ${code}`}, no summary)`);
    continue;
  }
  passed += ok;
  const bad = total - ok - skipped + (code !== 0 && total === ok ? 1 : 0);
  failed += bad;
  if (bad > 0) failures.push(name);
}

if (!filters.length) {
  for (const project of [root, path.join(root, 'examples/extension')]) {
    const name = `type-level tests (tsc -p ${path.relative(root, project) || '.'})`;
    console.log(`\n# ${name}`);
    const { code } = await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', project]);
    if (code === 0) passed++;
    else {
      failed++;
      failures.push(name);
    }
  }
}

if (failures.length) console.log(`\nFailed: ${failures.join(', ')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
