/**
 * The browser bundle of the client library and the example MV3 extension, with esbuild (`npm run build`).
 *
 *   dist/browser/tabagent-client.js   ESM bundle of src/client/index.ts (+ .map), for Chrome 120+
 *   examples/extension/dist/          the extension, ready for "Load unpacked"
 *
 * A Node-only import (`node:*` or a Node builtin) anywhere in a bundle fails the build with the import chain
 * that brings it in.
 */
import { builtinModules } from 'node:module';
import { copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const clientEntry = path.join(root, 'src/client/index.ts');
const clientBundle = path.join(root, 'dist/browser/tabagent-client.js');
const extensionSource = path.join(root, 'examples/extension');
const extensionDir = path.join(extensionSource, 'dist');

const TARGET = 'chrome120';
const STATIC_FILE = /\.(html|css)$|^manifest\.json$/;

const nodeBuiltins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

/**
 * Records every Node-only import that the browser platform cannot resolve (a package's `browser` field may map a
 * builtin away; those pass), marked external so the build finishes and its metafile shows the import chain.
 */
function nodeOnlyGuard(found: { module: string; importer: string }[]): esbuild.Plugin {
  return {
    name: 'node-only-guard',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === nodeOnlyGuard) return undefined;
        if (!args.path.startsWith('node:') && !nodeBuiltins.has(args.path.split('/')[0])) return undefined;
        const { kind, importer, resolveDir } = args;
        const resolved = await build.resolve(args.path, { kind, importer, resolveDir, pluginData: nodeOnlyGuard });
        if (!resolved.errors.length) return undefined;
        found.push({ module: args.path, importer: path.relative(root, importer) });
        return { path: args.path, external: true };
      });
    },
  };
}

/** The shortest import chain from an entry point to `target`, from the build's metafile (paths relative to root). */
function importChain(metafile: esbuild.Metafile, entries: string[], target: string): string[] {
  const previous = new Map<string, string | undefined>(entries.map((entry) => [entry, undefined]));
  const queue = [...entries];
  while (queue.length) {
    const file = queue.shift() as string;
    if (file === target) break;
    for (const { path: next } of metafile.inputs[file]?.imports ?? []) {
      if (next in metafile.inputs && !previous.has(next)) {
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  const chain: string[] = [];
  for (let file: string | undefined = target; file !== undefined; file = previous.get(file)) chain.unshift(file);
  return chain;
}

/** One browser build; throws if it needs a Node-only module, naming each import chain. */
async function bundle(name: string, options: esbuild.BuildOptions & { entryPoints: string[] }): Promise<void> {
  const found: { module: string; importer: string }[] = [];
  const result = await esbuild.build({
    ...options,
    absWorkingDir: root,
    bundle: true,
    platform: 'browser',
    target: TARGET,
    metafile: true,
    logLevel: 'warning',
    plugins: [nodeOnlyGuard(found)],
  });
  if (!found.length) return;
  const entries = options.entryPoints.map((entry) => path.relative(root, entry));
  const chains = found.map(({ module, importer }) =>
    [...importChain(result.metafile, entries, importer), module].join(' -> '),
  );
  throw new Error(`${name} imports Node-only modules:\n  ${[...new Set(chains)].join('\n  ')}`);
}

/** The .js files the manifest and the pages load: each is built from src/<same name>.ts. */
async function extensionEntries(files: string[]): Promise<string[]> {
  const manifest = JSON.parse(await readFile(path.join(extensionSource, 'manifest.json'), 'utf8')) as {
    background?: { service_worker?: string };
  };
  const scripts = new Set<string>();
  if (manifest.background?.service_worker) scripts.add(manifest.background.service_worker);
  for (const page of files.filter((file) => file.endsWith('.html'))) {
    const html = await readFile(path.join(extensionSource, page), 'utf8');
    for (const [, src] of html.matchAll(/<script\b[^>]*\bsrc="([^"]+\.js)"/g)) scripts.add(src);
  }
  return [...scripts].map((script) => {
    if (script.includes('/') || script.startsWith('.')) {
      throw new Error(`examples/extension: keep scripts at the top level (got "${script}")`);
    }
    return path.join(extensionSource, 'src', script.replace(/\.js$/, '.ts'));
  });
}

export async function buildBrowser(): Promise<{ clientBundle: string; extensionDir: string }> {
  await rm(path.dirname(clientBundle), { recursive: true, force: true });
  await bundle('dist/browser/tabagent-client.js', {
    entryPoints: [clientEntry],
    outfile: clientBundle,
    format: 'esm',
    sourcemap: 'linked',
  });

  await rm(extensionDir, { recursive: true, force: true });
  await mkdir(extensionDir, { recursive: true });
  const files = (await readdir(extensionSource, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && STATIC_FILE.test(entry.name))
    .map((entry) => entry.name);
  await Promise.all(files.map((file) => copyFile(path.join(extensionSource, file), path.join(extensionDir, file))));
  // ESM throughout: the service worker is declared `"type": "module"`, the pages load `<script type="module">`.
  await bundle('examples/extension', {
    entryPoints: await extensionEntries(files),
    outdir: extensionDir,
    format: 'esm',
    sourcemap: 'linked',
  });

  return { clientBundle, extensionDir };
}
