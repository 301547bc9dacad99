/**
 * The native messaging host, as mature hosts are (KeePassXC's `keepassxc-proxy`): a relay. Chrome starts it for a
 * `connectNative` port; it passes Chrome's stdin to the running server's native socket and the server's answers to
 * stdout, bytes as they are. The framing, the 1 MiB fragments, the requests, the store and every other state are the
 * server's, one for all transports. With no server there, the host starts one (detached, with the same settings, and
 * stopping itself after TABAGENT_EXIT_WHEN_IDLE_MS without clients) and waits for it.
 *
 * It loads nothing of the server, so that it starts in a few tens of milliseconds: `npm run build` bundles it into
 * `dist/native-host.mjs`, which the installed launcher runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { builtPath, DEFAULT_DATA_DIR, nativeSocketPath, repositoryRoot, serverLogPath } from '../../paths.ts';
import { encodeNativeMessage } from './framing.ts';
import { STARTED_BY_HOST } from './mode.ts';

/** How long a started server may take to open its socket (a first start creates the store). */
const START_TIMEOUT_MS = 60_000;
/** After the server it started exits, how long to wait for one started otherwise (by hand, say) to appear. */
const AFTER_EXIT_MS = 1_000;
const POLL_MS = 50;
/** A server the host starts stops after this long with no session, socket or port left. */
const IDLE_EXIT_MS = 10 * 60_000;

type Env = Record<string, string | undefined>;

/** Relays until the server or Chrome closes its side; resolves with the exit code. */
export async function runRelay(env: Env = process.env): Promise<number> {
  const dataDir = path.resolve(env.TABAGENT_DATA_DIR || DEFAULT_DATA_DIR);
  const socketPath = nativeSocketPath(dataDir, env.TABAGENT_NATIVE_SOCKET || undefined);
  const socket = (await connect(socketPath)) ?? (await startAndConnect(socketPath, dataDir, env));
  if (typeof socket === 'string') {
    process.stdout.write(encodeNativeMessage(JSON.stringify({ type: 'error', code: 'backend_unavailable', message: socket })));
    return 1;
  }
  return relay(socket);
}

function relay(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    // Chrome closing the port makes writes fail with EPIPE: nobody is left to answer.
    process.stdout.on('error', () => socket.destroy());
    socket.on('error', () => {});
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.once('close', () => resolve(0));
  });
}

/** A connection to the server on `socketPath`, or undefined when none answers there. */
function connect(socketPath: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}

/**
 * Starts a server and connects once its socket answers; a string says why it did not. Hosts that Chrome starts
 * together (several ports at once) start one server between them: the first to claim the start does, the others
 * wait for its socket.
 */
async function startAndConnect(socketPath: string, dataDir: string, env: Env): Promise<net.Socket | string> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const claim = claimStart(dataDir);
  let exitedAt: number | undefined;
  if (claim) startServer(dataDir, env).once('exit', () => (exitedAt = Date.now()));
  try {
    for (const deadline = Date.now() + START_TIMEOUT_MS; Date.now() < deadline; ) {
      const socket = await connect(socketPath);
      if (socket) return socket;
      if (exitedAt !== undefined && Date.now() - exitedAt > AFTER_EXIT_MS) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    if (claim) rmSync(claim, { force: true });
  }
  const logFile = serverLogPath(dataDir);
  return `No tabagent-webrtc server answers on ${socketPath}, and the one started for it did not come up: ${lastLine(logFile)} (see ${logFile})`;
}

/**
 * Claims the start of the server for this host (a file created only if absent); a claim whose host died, or older
 * than a start may take, is taken over. The claim's path, or undefined when another host holds it.
 */
function claimStart(dataDir: string): string | undefined {
  const file = path.join(dataDir, 'server.starting');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return file;
    } catch {
      if (!abandoned(file)) return undefined;
      rmSync(file, { force: true });
    }
  }
  return undefined;
}

function abandoned(claim: string): boolean {
  try {
    const pid = Number(readFileSync(claim, 'utf8'));
    if (Date.now() - statSync(claim).mtimeMs > START_TIMEOUT_MS) return true;
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/**
 * The server, detached so that it outlives this host, logging to a file: what `npm start` runs (the built server),
 * or the source through tsx where nothing is built (a host run from source).
 */
function startServer(dataDir: string, env: Env): ChildProcess {
  const root = repositoryRoot();
  const built = builtPath('server');
  const program = existsSync(built) ? [built] : ['--import', 'tsx', path.join(root, 'src/main.ts')];
  const log = openSync(serverLogPath(dataDir), 'a', 0o600);
  const child = spawn(process.execPath, [...program, STARTED_BY_HOST], {
    cwd: root,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...env, TABAGENT_DATA_DIR: dataDir, TABAGENT_EXIT_WHEN_IDLE_MS: env.TABAGENT_EXIT_WHEN_IDLE_MS || String(IDLE_EXIT_MS) },
  });
  child.unref();
  return child;
}

function lastLine(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '(an empty log)';
  } catch {
    return '(no log)';
  }
}
