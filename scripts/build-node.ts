/**
 * The Node programs as JavaScript, one file each, their npm packages left to node_modules: the server that
 * `npm start` runs, its peer process, and the native messaging host Chrome starts. Built, they skip tsx, which costs
 * each process a quarter of a second to start and 35 MB to keep (`npm run dev` runs the sources through tsx).
 */
import path from 'node:path';
import * as esbuild from 'esbuild';
import { BUILT, repositoryRoot } from '../src/paths.ts';

const root = repositoryRoot();
const ENTRIES: Record<keyof typeof BUILT, string> = {
  server: 'src/main.ts',
  peerProcess: 'src/peer/process/host.ts',
  nativeHost: 'src/transports/native/relay-main.ts',
};

export async function buildNode(): Promise<string[]> {
  const programs = Object.keys(BUILT) as (keyof typeof BUILT)[];
  await Promise.all(
    programs.map((program) =>
      esbuild.build({
        entryPoints: [path.join(root, ENTRIES[program])],
        outfile: path.join(root, BUILT[program]),
        absWorkingDir: root,
        bundle: true,
        // The host needs nothing but Node's own modules; the server's packages (native addons among them) load from
        // node_modules as they would from source.
        packages: program === 'nativeHost' ? undefined : 'external',
        platform: 'node',
        target: 'node20',
        format: 'esm',
        logLevel: 'warning',
      }),
    ),
  );
  return programs.map((program) => BUILT[program]);
}
