/**
 * `npm run build` (also run by `npm ci`, as `prepare`): the native messaging host as one JavaScript file,
 * `dist/native-host.mjs`, which the installed launcher runs. Built, it starts in tens of milliseconds; through tsx it
 * would spend a quarter of a second compiling first (see src/native/relay.ts).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { NATIVE_HOST_BUNDLE } from '../src/native/bundle.ts';

const root = path.resolve(import.meta.dirname, '..');

export async function buildNativeHost(): Promise<string> {
  await esbuild.build({
    entryPoints: [path.join(root, 'src/native/relay-main.ts')],
    outfile: NATIVE_HOST_BUNDLE,
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
  });
  return NATIVE_HOST_BUNDLE;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  console.log(`built ${path.relative(root, await buildNativeHost())}`);
}
