/// <reference types="chrome" />
/**
 * Native messaging as Chrome runs it: the built host (`dist/native-host.mjs`) as real child processes over pipes,
 * relaying to a real server's native socket (no mocks), the inference upstream test double behind it, the
 * installer as a command, and real headless Chromium starting the installed host for an extension's
 * `chrome.runtime.connectNative`, with nothing else running.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import wrtc from '@roamhq/wrtc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../src/client/index.ts';
import { createSignalingClient } from '../src/client/signaling.ts';
import { spawnNativeHost, type Frame, type NativeHostClient } from '../src/transports/native/client.ts';
import { fragmentJson } from '../src/transports/native/fragments.ts';
import { encodeLength, encodeNativeMessage, MAX_BROWSER_MESSAGE_BYTES, MAX_HOST_MESSAGE_BYTES, NativeMessageReader } from '../src/transports/native/framing.ts';
import { serverLogPath, serverPidPath } from '../src/paths.ts';
import { openStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { launchWithExtension } from './fixtures/chromium.ts';
import { withTimeout } from './fixtures/dev-server.ts';
import { startServer, type TestServer } from './fixtures/server.ts';
import { startUpstream, type Upstream } from './fixtures/upstream.ts';

const root = path.resolve(import.meta.dirname, '..');
const extensionDir = path.join(root, 'test/fixtures/native-extension');
const MiB = 1024 * 1024;

let upstream: Upstream;
let store: Store;
let server: TestServer;
let host: NativeHostClient;
/** Every message the shared host wrote, before reassembly. */
const wire: { bytes: number; frame: Frame }[] = [];
const cleanup: string[] = [];

const test = suite('native messaging host');

/** The environment of a host that relays to `to` (the shared server by default). */
function hostEnv(to: TestServer = server): Record<string, string> {
  return { TABAGENT_DATA_DIR: to.dataDir, LOG_LEVEL: 'info' };
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  cleanup.push(dir);
  return dir;
}

function expectError(frame: Frame, code: string, what: string, requestId?: string): void {
  assert.is(frame.type, 'error', `${what}: an error frame (got ${JSON.stringify(frame).slice(0, 300)})`);
  assert.is(frame.code, code, `${what}: code (message: ${String(frame.message)})`);
  assert.type(frame.message, 'string', `${what}: message`);
  assert.is(frame.request_id, requestId, `${what}: request_id`);
}

test.before(async () => {
  upstream = await startUpstream({ tokenDelayMs: 20 });
  store = await openStore({ dataDir: await tempDir('tabagent-native-store-') });
  server = await startServer({ upstreamUrl: upstream.url }, { store });
  host = await spawnNativeHost({ env: hostEnv(), args: ['chrome-extension://jagcooplibeiplimiacoilckcllcfkmk/'] });
  host.onWire((bytes, frame) => wire.push({ bytes, frame: frame.type === 'fragment' ? { ...frame, data: '' } : { type: frame.type } }));
});

test.after(async () => {
  host?.kill('SIGKILL');
  await server?.close();
  await store?.close();
  await upstream?.close();
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

test('health: a data-channel request frame gets the data channel answer', async () => {
  const answer = await host.request({ action: 'health', request_id: 'h1' });
  const { uptime_s, node_id, ...rest } = answer;
  assert.equal(rest, { request_id: 'h1', type: 'health', status: 'ok', version: '0.1.0' });
  assert.type(uptime_s, 'number');
  assert.match(String(node_id), /^[a-z0-9][a-z0-9-]*$/, 'the instance that answered');
  const unnamed = await host.request({ action: 'health' });
  assert.is(unnamed.type, 'health');
});

test('the seed form: a PascalCase request_type', async () => {
  const answer = await host.request({ request_type: 'GetStats', request_id: 'p1' });
  assert.is(answer.type, 'stats');
  assert.is(answer.request_id, 'p1');
  // Native traffic counts in the server's own stats.
  assert.ok((answer.messages as { in: number }).in >= 3, `messages in: ${JSON.stringify(answer.messages)}`);
});

test('the TabAgent envelope: success and failure shapes', async () => {
  const ok = await host.request({ route: 'Health', request_id: 'e1', payload: {} });
  assert.equal(Object.keys(ok).sort(), ['data', 'request_id', 'success']);
  assert.is(ok.success, true);
  assert.is((ok.data as Frame).type, 'health');
  assert.is((ok.data as Frame).status, 'ok');

  const echoed = await host.request({ route: 'echo', request_id: 'e2', payload: { data: { a: [1, 'two'] } } });
  assert.equal(echoed, { request_id: 'e2', success: true, data: { type: 'echo', data: { a: [1, 'two'] }, attachment_bytes: 0 } });

  const invalid = await host.request({ route: 'chat', request_id: 'e3', payload: { messages: [] } });
  assert.is(invalid.success, false);
  const error = invalid.error as { code: string; message: string; details: { field: string } };
  assert.is(error.code, 'invalid_request');
  assert.is(error.details.field, 'messages');
  assert.not.ok('type' in error, 'the error object is { code, message, details }');

  const unknown = await host.request({ route: 'Teleport', request_id: 'e4' });
  assert.equal(unknown, {
    request_id: 'e4',
    success: false,
    error: { code: 'unknown_action', message: 'Unknown action "Teleport"; see docs/REQUEST_TYPES.md', details: { action: 'Teleport' } },
  });

  const badPayload = await host.request({ route: 'health', request_id: 'e5', payload: [1] });
  assert.is((badPayload.error as Frame).code, 'invalid_request');
  assert.equal((badPayload.error as { details: unknown }).details, { field: 'payload' });

  const reserved = await host.request({ route: 'health', request_id: 'e6', payload: { action: 'echo' } });
  assert.equal((reserved.error as { details: unknown }).details, { field: 'payload.action' });
});

test('a streamed chat: indexed chunks then the answer; an envelope gets the answer whole; stop_generation cancels', async () => {
  const chunks: Frame[] = [];
  const messages = [{ role: 'user', content: 'hello big world' }];
  const answer = await host.stream({ action: 'chat', request_id: 's1', model: 'llama3.2:3b', messages, stream: true }, (f) => chunks.push(f));
  assert.is(answer.type, 'chat_response', JSON.stringify(answer));
  assert.is(answer.response, 'echo: hello big world');
  assert.equal(chunks.map((c) => c.index), chunks.map((_, i) => i));
  assert.is(chunks.map((c) => c.delta).join(''), 'echo: hello big world');

  const parts: Frame[] = [];
  const whole = await host.stream({ route: 'chat', request_id: 's2', payload: { model: 'llama3.2:3b', messages, stream: true } }, (f) => parts.push(f));
  assert.is(parts.length, 0, 'an envelope request gets no chunk frames');
  assert.is((whole.data as Frame).response, 'echo: hello big world');

  const slow = [{ role: 'user', content: 'one two three four five six seven eight nine ten [slow]' }];
  const seen: Frame[] = [];
  const cancelled = host.stream({ action: 'chat', request_id: 's3', model: 'llama3.2:3b', messages: slow, stream: true }, (f) => seen.push(f));
  await host.next((f) => f.request_id === 's3' && f.index === 1);
  const stop = await host.request({ action: 'stop_generation', target_request_id: 's3' });
  assert.equal(stop.stopped, ['s3']);
  expectError(await cancelled, 'cancelled', 'the stopped chat', 's3');
  assert.ok(seen.length < 11, `stopped early: ${seen.length} chunks`);
});

test('an answer over 1 MiB comes back in fragment frames, each within Chrome\'s limit', async () => {
  // Quotes, backslashes and newlines double when escaped; accents and emoji take 2 and 4 bytes.
  const data = '"\\\n é😀 ascii text '.repeat(Math.ceil((3 * MiB) / 20));
  const before = wire.length;
  const answer = await host.request({ action: 'echo', request_id: 'big', data });
  assert.ok(answer.data === data, 'the reassembled answer equals the input');
  const fragments = wire.slice(before).filter((m) => m.frame.type === 'fragment');
  assert.ok(fragments.length >= 4, `${fragments.length} fragments`);
  for (const { bytes, frame } of fragments) {
    assert.ok(bytes <= MAX_HOST_MESSAGE_BYTES, `fragment ${frame.index} is ${bytes} bytes`);
    assert.is(frame.count, fragments.length);
  }
  assert.equal(fragments.map((m) => m.frame.index), fragments.map((_, i) => i));
  assert.ok(fragments[0].bytes > MAX_HOST_MESSAGE_BYTES - 1024, `fragments are nearly full (${fragments[0].bytes} bytes)`);
});

test('fragmentJson keeps every fragment within the limit, whatever escaping costs', () => {
  const limit = 4096;
  for (const unit of ['"', '\\', '\u0001', '😀', 'é', '\u2028', 'a', '\ud800']) {
    const json = JSON.stringify({ text: unit.repeat(20_000) });
    const pieces = fragmentJson(json, 1, limit);
    for (const piece of pieces) assert.ok(Buffer.byteLength(piece) <= limit, `${JSON.stringify(unit)}: ${Buffer.byteLength(piece)} bytes`);
    assert.is(pieces.map((piece) => JSON.parse(piece).data).join(''), json, `${JSON.stringify(unit)} reassembles`);
  }
});

test('a 20 MiB request from the browser side is accepted', async () => {
  const data = 'x'.repeat(20 * MiB);
  const answer = await host.request({ action: 'echo', request_id: 'r20', data });
  assert.is(answer.type, 'echo');
  assert.ok(answer.data === data, 'echoed whole');
});

test('a length over 64 MiB: payload_too_large at once, its bytes skipped, then the host serves on', async () => {
  const length = MAX_BROWSER_MESSAGE_BYTES + 1;
  const rejected = host.next((f) => f.code === 'payload_too_large');
  host.sendRaw(encodeLength(length));
  const error = await rejected; // before any of its bytes were sent
  expectError(error, 'payload_too_large', 'the oversize message');
  assert.equal(error.details, { limit: MAX_BROWSER_MESSAGE_BYTES, length });
  host.sendRaw(Buffer.alloc(length, 0x7b));
  const after = await host.request({ action: 'health', request_id: 'after-oversize' });
  assert.is(after.type, 'health');
});

test('malformed messages get typed errors and the host keeps serving', async () => {
  const invalidJson = host.next((f) => f.type === 'error' && f.code === 'invalid_json');
  host.sendRaw(encodeNativeMessage('{"action": "health",'));
  expectError(await invalidJson, 'invalid_json', 'a cut JSON text');

  const invalidUtf8 = host.next((f) => f.type === 'error' && f.code === 'invalid_json');
  const bytes = Buffer.from([0x22, 0xff, 0xfe, 0x22]);
  host.sendRaw(Buffer.concat([encodeLength(bytes.length), bytes]));
  assert.match(String((await invalidUtf8).message), 'UTF-8');

  const empty = host.next((f) => f.type === 'error' && f.code === 'invalid_json');
  host.sendRaw(encodeLength(0));
  expectError(await empty, 'invalid_json', 'an empty message');

  const notObject = host.next((f) => f.type === 'error' && f.code === 'invalid_request');
  host.send([1, 2] as unknown as Frame);
  expectError(await notObject, 'invalid_request', 'an array');

  expectError(await host.request({ action: 'teleport', request_id: 'u1' }), 'unknown_action', 'an unknown action', 'u1');
  expectError(await host.request({ action: 'echo', request_id: 'u2', nonsense: 1 }), 'invalid_request', 'an unknown field', 'u2');
  assert.is((await host.request({ action: 'health' })).type, 'health');
});

test('every host reaches the one server: one store, one set_params, one get_stats across native messaging, tRPC and the data channel', async () => {
  const second = await spawnNativeHost({ env: hostEnv() });
  try {
    const saved = await second.request({ action: 'save_message', session_id: 'native', message: { role: 'user', content: 'said over native messaging' } });
    assert.is(saved.type, 'message_saved', JSON.stringify(saved));
    const history = await host.request({ action: 'chat_history', session_id: 'native' });
    assert.equal((history.messages as { content: string }[]).map((m) => m.content), ['said over native messaging'], 'the other host sees it');
    const api = createSignalingClient({ url: server.url });
    assert.equal((await api.rpc.chat_history.query({ session_id: 'native' })).messages.map((m) => m.content), ['said over native messaging']);

    const client = await server.client();
    await client.request('set_params', { params: { temperature: 0.25 } });
    assert.equal((await second.request({ action: 'get_params' })).params, { temperature: 0.25 }, 'params set on the data channel');
    await client.request('save_message', { session_id: 'native', message: { role: 'assistant', content: 'answered over WebRTC' } });
    const both = await second.request({ action: 'chat_history', session_id: 'native' });
    assert.equal((both.messages as { content: string }[]).map((m) => m.content), ['said over native messaging', 'answered over WebRTC']);

    const before = (await api.rpc.get_stats.query({})).messages.in;
    await second.request({ action: 'health' });
    assert.ok((await api.rpc.get_stats.query({})).messages.in > before, 'native traffic counts in the server\'s stats');
  } finally {
    assert.is(await withTimeout(second.close(), 10_000, 'the second host to exit'), 0);
  }
});

test('stdin ends (Chrome closed the port): the request in flight is cancelled and answered, the host exits 0, the server serves on', async () => {
  // 100 tokens 20 ms apart: still running when the port closes.
  const slow = [{ role: 'user', content: `${Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ')} [slow]` }];
  const pending = host.request({ action: 'chat', request_id: 'eof', model: 'llama3.2:3b', messages: slow, stream: true });
  await host.next((f) => f.request_id === 'eof' && f.type === 'chunk');
  const started = Date.now();
  const code = await withTimeout(host.close(), 10_000, () => `the host to exit; stderr:\n${host.stderr()}`);
  const took = Date.now() - started;
  assert.is(code, 0);
  expectError(await pending, 'cancelled', 'the request in flight', 'eof');
  // Chrome kills a host 2 s after closing its pipes.
  assert.ok(took < 2_000, `exited in ${took} ms`);
  assert.is(server.app.dispatcher.inFlightCount, 0, 'nothing of the port runs on in the server');
  // stdout held nothing but native messages that Chrome would accept.
  assert.equal(host.violations, []);
  assert.is(host.leftoverBytes(), 0);
  assert.ok(wire.length > 20, `${wire.length} messages read`);
  const next = await spawnNativeHost({ env: hostEnv() });
  assert.is((await next.request({ action: 'health' })).type, 'health', 'a new port is served');
  assert.is(await withTimeout(next.close(), 10_000, 'the host to exit'), 0);
});

test('a message cut off by the end of input gets an error before the exit', async () => {
  const cut = await spawnNativeHost({ env: hostEnv() });
  const error = cut.next((f) => f.type === 'error');
  cut.sendRaw(Buffer.concat([encodeLength(100), Buffer.from('{"action":')]));
  const code = await withTimeout(cut.close(), 15_000, 'the host to exit');
  expectError(await error, 'invalid_request', 'the cut message');
  assert.match(String((await error).message), '10 of its 100 bytes');
  assert.is(code, 0);
  assert.equal(cut.violations, []);
});

test('a garbage length (4 GiB) is refused at once, and the end of input still exits cleanly', async () => {
  const garbage = await spawnNativeHost({ env: hostEnv() });
  const error = garbage.next((f) => f.type === 'error');
  garbage.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01, 0x02]));
  expectError(await error, 'payload_too_large', 'a 4 GiB length');
  assert.is(await withTimeout(garbage.close(), 15_000, 'the host to exit'), 0);
});

test('the server shuts down: a shutting_down event, the request in flight finishes within the grace, later ones are refused, the host exits 0', async () => {
  const stopping = await startServer({ upstreamUrl: upstream.url, shutdownGraceMs: 5_000 });
  const relayed = await spawnNativeHost({ env: hostEnv(stopping) });
  try {
    const messages = [{ role: 'user', content: 'a b c d e f g h [slow]' }];
    const inFlight = relayed.request({ action: 'chat', request_id: 'term', model: 'llama3.2:3b', messages, stream: true });
    await relayed.next((f) => f.request_id === 'term' && f.type === 'chunk');
    const notice = relayed.next((f) => f.type === 'event' && f.event === 'shutting_down');
    const closing = stopping.app.close(5_000);
    assert.equal((await notice).data, { grace_ms: 5000 });
    expectError(await relayed.request({ action: 'echo', request_id: 'late' }), 'shutting_down', 'a request during the shutdown', 'late');
    const answer = await inFlight;
    assert.is(answer.type, 'chat_response', JSON.stringify(answer));
    await closing;
    assert.is(await withTimeout(relayed.exited, 10_000, 'the host to exit'), 0);
    assert.equal(relayed.violations, []);
  } finally {
    relayed.kill('SIGKILL');
    await stopping.close();
  }
});

function installer(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--install-native-host', ...args], {
    cwd: root,
    env: { ...process.env, TABAGENT_UPSTREAM_URL: 'off', ...env },
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The id Chrome gives an extension with this manifest key: its SHA-256, first 32 hex digits written a-p. */
function extensionId(key: string): string {
  const hex = createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 32);
  return [...hex].map((digit) => String.fromCharCode(97 + Number.parseInt(digit, 16))).join('');
}

test('--install-native-host --dir writes the manifest and an executable launcher, which Chrome could start', async () => {
  const dir = await tempDir('tabagent-native-manifest-');
  const origin = 'chrome-extension://jagcooplibeiplimiacoilckcllcfkmk/';
  const { code, stdout, stderr } = installer(['--dir', dir], { TABAGENT_NATIVE_ALLOWED_ORIGINS: origin, TABAGENT_DATA_DIR: server.dataDir });
  assert.is(code, 0, stderr);
  const launcher = path.join(dir, 'native-host.sh');
  const manifestFile = path.join(dir, 'com.tabagent.host.json');
  assert.is(stdout, `wrote ${launcher}\nwrote ${manifestFile}\n`);
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  assert.equal(manifest, {
    name: 'com.tabagent.host',
    description: manifest.description,
    path: launcher,
    type: 'stdio',
    allowed_origins: [origin],
  });
  assert.type(manifest.description, 'string');
  assert.is(statSync(launcher).mode & 0o777, 0o755);
  const script = await readFile(launcher, 'utf8');
  assert.match(script, `cd '${root}'`);
  assert.match(script, `export TABAGENT_DATA_DIR='${server.dataDir}'`);
  assert.match(script, 'dist/native-host.mjs');

  // Started as Chrome starts it: the launcher itself, the origin as its argument, native messages both ways.
  const child = spawn(launcher, [origin], { stdio: ['pipe', 'pipe', 'pipe'] });
  const reader = new NativeMessageReader(MAX_HOST_MESSAGE_BYTES);
  const answer = new Promise<Frame>((resolve) =>
    child.stdout.on('data', (chunk: Buffer) => {
      for (const input of reader.push(chunk)) if (input.kind === 'message') resolve(JSON.parse(input.bytes.toString()));
    }),
  );
  child.stdin.end(encodeNativeMessage(JSON.stringify({ request_type: 'Health', request_id: 'via-launcher' })));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.is((await withTimeout(answer, 30_000, 'an answer through the launcher')).request_id, 'via-launcher');
  assert.is(await withTimeout(exited, 10_000, 'the launcher to exit'), 0);
});

test('--install-native-host refuses without allowed origins, and origins must be chrome-extension://<id>/', async () => {
  const dir = await tempDir('tabagent-native-refused-');
  const none = installer(['--dir', dir], { TABAGENT_NATIVE_ALLOWED_ORIGINS: '' });
  assert.is(none.code, 1);
  assert.match(none.stderr, 'TABAGENT_NATIVE_ALLOWED_ORIGINS=chrome-extension://');
  assert.is(none.stdout, '');
  assert.not.ok(existsSync(path.join(dir, 'com.tabagent.host.json')));

  const wildcard = installer(['--dir', dir], { TABAGENT_NATIVE_ALLOWED_ORIGINS: 'chrome-extension://*/' });
  assert.is.not(wildcard.code, 0);
  assert.match(wildcard.stderr, 'Invalid TABAGENT_NATIVE_ALLOWED_ORIGINS');

  const badBrowser = installer(['--browser', 'firefox'], { TABAGENT_NATIVE_ALLOWED_ORIGINS: 'chrome-extension://jagcooplibeiplimiacoilckcllcfkmk/' });
  assert.is(badBrowser.code, 1);
  assert.match(badBrowser.stderr, '--browser must be chrome, chromium or all');
});

/** Stops the server a host started (by its pid file), waiting until it is gone. */
async function stopStartedServer(dataDir: string): Promise<void> {
  const pidFile = serverPidPath(dataDir);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  process.kill(pid, 'SIGTERM');
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  process.kill(pid, 'SIGKILL');
}

test('Chromium with nothing else running: connectNative starts the server; a message saved there is read over WebRTC, and back', async () => {
  const manifest = JSON.parse(await readFile(path.join(extensionDir, 'manifest.json'), 'utf8'));
  const id = extensionId(manifest.key);
  const profileDir = await tempDir('tabagent-native-profile-');
  const browserDataDir = await tempDir('tabagent-native-browser-data-');
  const install = installer(['--dir', path.join(profileDir, 'NativeMessagingHosts')], {
    TABAGENT_NATIVE_ALLOWED_ORIGINS: `chrome-extension://${id}/`,
    TABAGENT_DATA_DIR: browserDataDir,
    PORT: '0',
  });
  assert.is(install.code, 0, install.stderr);

  const context = await launchWithExtension(profileDir, extensionDir);
  try {
    const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker'));
    assert.is(new URL(worker.url()).host, id, 'the id computed from the manifest key');
    type Exchange = (messages: unknown[], finals: number) => Promise<{ frames: Frame[]; fragments: number; error?: string }>;
    const exchange = (messages: unknown[]) =>
      withTimeout(
        worker.evaluate(([messages]) => (self as unknown as { exchange: Exchange }).exchange(messages as unknown[], (messages as unknown[]).length), [messages]),
        90_000,
        'the extension to exchange messages with the host',
      );
    const data = 'y'.repeat(3 * MiB);
    const result = await exchange([
      { action: 'health', request_id: 'b1' },
      { route: 'Health', request_id: 'b2' },
      { action: 'echo', request_id: 'b3', data },
      { action: 'save_message', request_id: 'b4', session_id: 'tab', message: { role: 'user', content: 'from the extension' } },
    ]);
    assert.is(result.error, undefined, `the port stayed up (${result.error})`);
    const byId = new Map(result.frames.map((frame) => [frame.request_id, frame]));
    assert.is(byId.get('b1')?.type, 'health');
    assert.is(byId.get('b2')?.success, true);
    assert.ok(byId.get('b3')?.data === data, 'the 3 MiB echo reassembled in the extension');
    assert.ok(result.fragments >= 3, `${result.fragments} fragments`);
    assert.is(byId.get('b4')?.type, 'message_saved', JSON.stringify(byId.get('b4')));

    // The host started the server: its log names the address it took.
    const url = /listening on (http:\/\/[\d.:]+)/.exec(readFileSync(serverLogPath(browserDataDir), 'utf8'))?.[1];
    assert.ok(url, 'the started server logged its address');
    const client = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
    try {
      const history = await client.request('chat_history', { session_id: 'tab' });
      assert.equal(history.messages.map((m) => m.content), ['from the extension'], 'read over the data channel');
      await client.request('save_message', { session_id: 'tab', message: { role: 'assistant', content: 'from WebRTC' } });
    } finally {
      await client.close();
    }
    const back = await exchange([{ action: 'chat_history', request_id: 'b5', session_id: 'tab' }]);
    const messages = (back.frames.find((frame) => frame.request_id === 'b5')?.messages ?? []) as { content: string }[];
    assert.equal(messages.map((m) => m.content), ['from the extension', 'from WebRTC'], 'read back over native messaging');
  } finally {
    await context.close();
    await stopStartedServer(browserDataDir);
  }
});

test.run();
