/**
 * `tsx src/main.ts --install-native-host [--browser chrome|chromium|all] [--dir <dir>]` registers the native host
 * for the current user (Linux, macOS): a launcher script, because a manifest's `path` must be one absolute
 * executable, and the manifest `com.tabagent.host.json` in each browser's NativeMessagingHosts directory.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENV_VARS, type Config } from '../../config.ts';
import { builtPath, repositoryRoot } from '../../paths.ts';

export const HOST_NAME = 'com.tabagent.host';
export const MANIFEST_FILE = `${HOST_NAME}.json`;
export const LAUNCHER_FILE = 'native-host.sh';
const BROWSERS = ['chrome', 'chromium'] as const;
type Browser = (typeof BROWSERS)[number];
type Platform = 'linux' | 'darwin';


/** Where each browser reads a user's host manifests, under the home directory. */
const MANIFEST_DIRS: Record<Platform, Record<Browser, string>> = {
  linux: { chrome: '.config/google-chrome/NativeMessagingHosts', chromium: '.config/chromium/NativeMessagingHosts' },
  darwin: {
    chrome: 'Library/Application Support/Google/Chrome/NativeMessagingHosts',
    chromium: 'Library/Application Support/Chromium/NativeMessagingHosts',
  },
};

/** Settings whose values must not be readable by other users: a launcher holding one is made 0700. */
const SECRET_SETTINGS: readonly string[] = [ENV_VARS.upstreamApiKey, ENV_VARS.databaseUrl];
/** The manifest carries these; the host itself does not read them. */
const NOT_FOR_THE_HOST: readonly string[] = [ENV_VARS.nativeAllowedOrigins];

export interface HostManifest {
  name: string;
  description: string;
  path: string;
  type: 'stdio';
  allowed_origins: string[];
}

/** Installs and prints the files written to stdout (this command is not the host); resolves with the exit code. */
export async function installNativeHost(
  config: Config,
  args: readonly string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  try {
    const written = await install(config, args, env);
    for (const file of written) console.log(`wrote ${file}`);
    return 0;
  } catch (error) {
    console.error(`--install-native-host: ${(error as Error).message}`);
    return 1;
  }
}

async function install(config: Config, args: readonly string[], env: Record<string, string | undefined>): Promise<string[]> {
  const { values } = parseArgs({
    args: [...args],
    options: { 'install-native-host': { type: 'boolean' }, browser: { type: 'string', default: 'chrome' }, dir: { type: 'string' } },
    strict: true,
  });
  if (config.nativeAllowedOrigins.length === 0) {
    throw new Error(
      `no extension may start the host: set ${ENV_VARS.nativeAllowedOrigins}=chrome-extension://<extension id>/ ` +
        '(comma-separated; the id is on chrome://extensions) and run this again',
    );
  }
  const host = builtPath('nativeHost');
  if (!existsSync(host)) throw new Error(`${host} is missing: run npm run build (npm ci runs it)`);
  const platform = process.platform;
  if (platform !== 'linux' && platform !== 'darwin') {
    throw new Error(
      `${platform} is not supported: on Windows, Chrome finds hosts through the registry ` +
        `(HKCU\\Software\\Google\\Chrome\\NativeMessagingHosts\\${HOST_NAME}) and cannot start a shell script`,
    );
  }
  const home = os.homedir();
  // With --dir everything the install writes sits in that one directory (a test profile's, say).
  const manifestDirs = values.dir ? [path.resolve(values.dir)] : browsersOf(values.browser).map((b) => path.join(home, MANIFEST_DIRS[platform][b]));
  const launcherDir = values.dir ? path.resolve(values.dir) : defaultLauncherDir(platform, home, env);

  const launcher = path.join(launcherDir, LAUNCHER_FILE);
  const baked = bakedSettings(env);
  const mode = baked.some(([name]) => SECRET_SETTINGS.includes(name)) ? 0o700 : 0o755;
  await mkdir(launcherDir, { recursive: true });
  // A new file, created with its final mode: a secret is never readable by others, not even for a moment.
  await rm(launcher, { force: true });
  await writeFile(launcher, launcherScript(baked), { mode });
  await chmod(launcher, mode); // the umask may have taken bits away

  const manifest = hostManifest(launcher, config.nativeAllowedOrigins);
  const written = [launcher];
  for (const dir of manifestDirs) {
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, MANIFEST_FILE);
    await writeFile(file, JSON.stringify(manifest, null, 2) + '\n');
    written.push(file);
  }
  return written;
}

export function hostManifest(launcherPath: string, allowedOrigins: string[]): HostManifest {
  return {
    name: HOST_NAME,
    description: 'tabagent-webrtc: the AI server request types over Chrome native messaging',
    path: launcherPath,
    type: 'stdio',
    allowed_origins: allowedOrigins,
  };
}

function browsersOf(choice: string | undefined): Browser[] {
  if (choice === 'all') return [...BROWSERS];
  if ((BROWSERS as readonly string[]).includes(choice ?? '')) return [choice as Browser];
  throw new Error(`--browser must be chrome, chromium or all (got ${JSON.stringify(choice)})`);
}

function defaultLauncherDir(platform: Platform, home: string, env: Record<string, string | undefined>): string {
  if (platform === 'darwin') return path.join(home, 'Library/Application Support/tabagent-webrtc');
  return path.join(env.XDG_DATA_HOME || path.join(home, '.local/share'), 'tabagent-webrtc');
}

/**
 * The settings in the installing shell's environment. Chrome starts a host with the browser's environment, not
 * that shell's, so the launcher sets them itself; a relative data directory is made absolute first.
 */
function bakedSettings(env: Record<string, string | undefined>): [string, string][] {
  const names = [...Object.values(ENV_VARS), 'LOG_LEVEL'].filter((name) => !NOT_FOR_THE_HOST.includes(name));
  return names.flatMap((name): [string, string][] => {
    const value = env[name];
    if (value === undefined || value === '') return [];
    return [[name, name === ENV_VARS.dataDir ? path.resolve(value) : value]];
  });
}

function launcherScript(settings: [string, string][]): string {
  return [
    '#!/bin/sh',
    '# The tabagent-webrtc native messaging host, written by `tsx src/main.ts --install-native-host`.',
    "# Chrome starts it with the caller's origin as an argument and talks to it over stdin/stdout.",
    ...(settings.length ? ['# Settings from the environment the install ran in:'] : []),
    ...settings.map(([name, value]) => `export ${name}=${shellQuote(value)}`),
    // The host is built JavaScript (npm run build), to start fast; the server it may start runs from here.
    `cd ${shellQuote(repositoryRoot())} || exit 1`,
    `exec ${shellQuote(process.execPath)} ${shellQuote(builtPath('nativeHost'))} "$@"`,
    '',
  ].join('\n');
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
