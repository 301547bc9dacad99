/**
 * Where the server keeps its files, named in one place for the server and for the native messaging host (which
 * must find the running server without loading the server's code, to start fast).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The data directory when TABAGENT_DATA_DIR is unset, relative to the working directory (the repository's). */
export const DEFAULT_DATA_DIR = '.data';

/** The Unix socket the server serves native messaging on, which the native host relays Chrome's port to. */
export function nativeSocketPath(dataDir: string, configured?: string): string {
  return path.resolve(configured ?? path.join(dataDir, 'native.sock'));
}

/** The process id of the server that owns the native socket: `kill $(cat <dataDir>/server.pid)` stops it. */
export function serverPidPath(dataDir: string): string {
  return path.resolve(dataDir, 'server.pid');
}

/** Where a server the native host started writes its log. */
export function serverLogPath(dataDir: string): string {
  return path.resolve(dataDir, 'server.log');
}

/**
 * The repository the running code belongs to, whether it runs as source (src/) or built (dist/): the nearest folder
 * above this module with a package.json.
 */
export function repositoryRoot(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
  }
}

/** The Node programs `npm run build` makes (and `npm ci` runs it): what `npm start` and Chrome start. */
export const BUILT = {
  server: 'dist/server.mjs',
  peerProcess: 'dist/peer-process.mjs',
  nativeHost: 'dist/native-host.mjs',
} as const;

/** A built program's absolute path. */
export function builtPath(program: keyof typeof BUILT): string {
  return path.join(repositoryRoot(), BUILT[program]);
}

/** The embedded engine's GGUF models. */
export function modelsDirPath(dataDir: string, configured?: string): string {
  return path.resolve(configured ?? path.join(dataDir, 'models'));
}
