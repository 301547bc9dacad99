/// <reference types="chrome" />
/**
 * The example MV3 extension (examples/extension), built by `npm run build`, loaded unpacked into real headless
 * Chromium against the real dev server (`tsx src/main.ts`) and an upstream test double: the service worker opens
 * the offscreen document (reason WEB_RTC), which connects over WebRTC; the popup streams a chat and shows
 * model-loading progress; the connection survives server restarts, graceful and not, mid-stream; and, pointed at
 * a server whose embedded engine runs the test model, the popup picks it, loads it and streams its story.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page, Worker } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildBrowser } from '../../scripts/build-browser.ts';
import { createSignalingClient } from '../../src/client/index.ts';
import { launchWithExtension } from '../fixtures/chromium.ts';
import { startDevServer, withTimeout, type DevServer } from '../fixtures/dev-server.ts';
import { MODEL as GGUF_MODEL, MODELS_DIR } from '../fixtures/models.ts';
import { startUpstream, type Upstream } from '../fixtures/upstream.ts';

const TOKEN_DELAY_MS = 60;
const MODEL = 'llama3.2:3b';

interface Setup {
  context: BrowserContext;
  worker: Worker;
  popup: Page;
  upstream: Upstream;
  dataDir: string;
  profileDir: string;
  /** Every line the extension's pages and the server logged, for failure messages. */
  log: string[];
}

let server: DevServer | undefined;
/** Output of the servers this file has stopped, for failure messages. */
const pastServers: string[] = [];
let setup: Setup | undefined;
let starting: Promise<Setup> | undefined;
process.on('exit', () => server?.process.kill('SIGKILL'));

const test = suite('example extension');

/** Upstream, server, Chromium with the extension, the popup pointed at the server: once, for every test. */
function ready(): Promise<Setup> {
  return (starting ??= start());
}

async function start(): Promise<Setup> {
  const { extensionDir } = await buildBrowser();
  const upstream = await startUpstream({ ollama: true, tokenDelayMs: TOKEN_DELAY_MS });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-ext-data-'));
  server = await startServer(upstream, dataDir);
  const profileDir = await mkdtemp(path.join(tmpdir(), 'tabagent-ext-profile-'));
  const context = await launchWithExtension(profileDir, extensionDir);
  const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker'));
  const log: string[] = [];
  const popup = await context.newPage();
  popup.on('console', (message) => log.push(`popup ${message.type()}: ${message.text()}`));
  popup.on('pageerror', (error) => log.push(`popup error: ${error.message}`));
  const extensionId = new URL(worker.url()).host; // chrome-extension://<id>/service-worker.js
  await popup.goto(`chrome-extension://${extensionId}/popup.html`);
  setup = { context, worker, popup, upstream, dataDir, profileDir, log };
  // The extension's default is 127.0.0.1:8080; the settings form points it at this test's server.
  await popup.fill('#server-url', server.url);
  await popup.click('#save');
  // The server has no default model; the popup's picker lists the upstream's, and this one is chosen.
  await until(popup, (model) => [...document.querySelectorAll('#model option')].some((o) => (o as HTMLOptionElement).value === model), 'the model picker', MODEL);
  await popup.selectOption('#model', MODEL);
  return setup;
}

test.after(async () => {
  await setup?.context.close();
  server?.process.kill('SIGKILL');
  await server?.exited;
  await setup?.upstream.close();
  for (const dir of [setup?.dataDir, setup?.profileDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

test('the service worker opens an offscreen document (reason WEB_RTC) whose client connects over WebRTC', async () => {
  const { popup, worker } = await ready();
  await waitForStatus(popup, 'connected');
  const contexts = await worker.evaluate(() => chrome.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT' as chrome.runtime.ContextType] }));
  assert.is(contexts.length, 1, 'one offscreen document');
  const sessions = await serverSessions();
  assert.equal(sessions.by_state, { connected: 1 }, "one session on the server: the offscreen document's");
});

test('the popup streams a chat token by token', async () => {
  const { popup } = await ready();
  await popup.fill('#prompt', '[slow] hello big world');
  await popup.click('#send');
  await until(popup, () => (document.querySelector('#output')?.textContent ?? '').length > 0, 'the first token');
  const early = await popup.evaluate(() => document.querySelector<HTMLElement>('#output')!.dataset.done);
  assert.is(early, undefined, 'tokens show before the answer is complete');
  await until(popup, () => document.querySelector<HTMLElement>('#output')!.dataset.done === 'true', 'the final answer');
  const output = await popup.evaluate(() => {
    const element = document.querySelector<HTMLElement>('#output')!;
    return { text: element.textContent, chunks: element.dataset.chunks };
  });
  assert.is(output.text, 'echo: [slow] hello big world');
  assert.is(output.chunks, '5', 'one chunk a token');
});

test('loading a model shows the progress events in the popup', async () => {
  const { popup } = await ready();
  await popup.click('#load-model');
  await until(popup, () => document.querySelector<HTMLProgressElement>('#progress')!.value === 1, 'the progress bar to fill');
  const status = await popup.evaluate(() => document.querySelector('#progress-status')!.textContent);
  assert.ok(status && status.length > 0, `the event's status is shown (${status})`);
  await portStart(popup, [{ type: 'request', id: 'load', action: 'load_model', params: { model_id: MODEL } }]);
  const events = await portWait(popup, ['load']);
  const progress = events.filter((m) => m.type === 'event' && m.name === 'model_loading_progress');
  assert.ok(progress.length >= 2, `progress events reach extension pages (${progress.length})`);
  assert.is((progress.at(-1)!.data as { progress: number }).progress, 1);
});

test('a graceful server restart mid-stream: the stream completes once, a request made meanwhile is answered after', async () => {
  const { popup } = await ready();
  const prompt = `[slow] ${words(20)}`;
  await portStart(popup, [{ type: 'request', id: 'story', action: 'chat', params: { model: MODEL, messages: [{ role: 'user', content: prompt }] }, stream: true }]);
  await waitForChunks(popup, 'story', 3);
  server!.process.kill('SIGTERM');
  await portPost(popup, [{ type: 'request', id: 'during', action: 'echo', params: { data: 'made during the restart' } }]);
  assert.is(await withTimeout(server!.exited, 30_000, 'the server to drain and exit'), 0, 'a clean exit');
  server = await startServer(setup!.upstream, setup!.dataDir, server!.port);
  const messages = await portWait(popup, ['story', 'during']);

  const chunks = messages.filter((m) => m.type === 'chunk' && m.id === 'story').map((m) => m.chunk as { index: number; delta: string });
  const results = messages.filter((m) => m.type === 'result' && m.id === 'story');
  assert.is(results.length, 1, 'one final answer');
  const response = (results[0].response as { response: string }).response;
  assert.is(response, `echo: ${prompt}`);
  assert.equal(chunks.map((c) => c.index), [...Array(chunks.length).keys()], 'each chunk once, in order');
  assert.is(chunks.map((c) => c.delta).join(''), response, 'the chunks add up to the answer');
  const during = messages.filter((m) => m.id === 'during');
  assert.is(during.length, 1, 'the request made during the restart is answered once');
  assert.is((during[0].response as { data: string }).data, 'made during the restart');
  await waitForStatus(popup, 'connected');
});

test('a server killed mid-stream: the cut stream fails `interrupted` once; a request that had no answer yet is answered by the restarted server', async () => {
  const { popup } = await ready();
  const whole = `[slow] ${words(30)}`;
  await portStart(popup, [
    { type: 'request', id: 'cut', action: 'chat', params: { model: MODEL, messages: [{ role: 'user', content: `[slow] ${words(40)}` }] }, stream: true },
    { type: 'request', id: 'whole', action: 'chat', params: { model: MODEL, messages: [{ role: 'user', content: whole }] } },
  ]);
  await waitForChunks(popup, 'cut', 3);
  server!.process.kill('SIGKILL');
  await server!.exited;
  server = await startServer(setup!.upstream, setup!.dataDir, server!.port);
  const messages = await portWait(popup, ['cut', 'whole']);

  const cut = messages.filter((m) => m.id === 'cut' && m.type !== 'chunk');
  assert.is(cut.length, 1, 'one final outcome for the cut stream');
  assert.is((cut[0].error as { code: string }).code, 'interrupted', 'not re-run: its chunks would repeat');
  const indices = messages.filter((m) => m.type === 'chunk' && m.id === 'cut').map((m) => (m.chunk as { index: number }).index);
  assert.equal(indices, [...Array(indices.length).keys()], 'no chunk twice');
  const answers = messages.filter((m) => m.id === 'whole');
  assert.is(answers.length, 1, 'answered once');
  assert.is((answers[0].response as { response: string }).response, `echo: ${whole}`, 'by the restarted server');
  await waitForStatus(popup, 'connected');
});

test('against the embedded engine: the picker lists the GGUF model, Load shows the loader\'s progress, the story streams', async () => {
  const { popup } = await ready();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-ext-embedded-'));
  const embedded = await startDevServer({ TABAGENT_UPSTREAM_URL: 'off', TABAGENT_DATA_DIR: dataDir, TABAGENT_MODELS_DIR: MODELS_DIR });
  try {
    await popup.fill('#server-url', embedded.url);
    await popup.click('#save');
    await waitForStatus(popup, 'connected');
    await until(popup, (model) => document.querySelector<HTMLSelectElement>('#model')!.value === model, 'the picker to list the GGUF model', GGUF_MODEL);
    const label = await popup.evaluate(() => document.querySelector<HTMLSelectElement>('#model')!.selectedOptions[0].textContent);
    assert.is(label, `${GGUF_MODEL} · 293K · F32`);

    // Every value the bar takes, as the popup sets it from the model_loading_progress events. (A string: tsx
    // would wrap a function's inner arrows in a helper the page does not have.)
    await popup.evaluate(`{
      const bar = document.querySelector('#progress');
      const setter = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value').set;
      const seen = (window.barValues = []);
      Object.defineProperty(bar, 'value', { get() { return Number(bar.getAttribute('value')); }, set(v) { seen.push(v); setter.call(bar, v); } });
    }`);
    await popup.click('#load-model');
    await until(popup, () => document.querySelector('#progress-status')!.textContent === 'loaded', 'the loaded status');
    const values = await popup.evaluate(() => (window as unknown as { barValues: number[] }).barValues);
    assert.ok(values.some((v) => v > 0 && v < 1), `the bar moved with the loader (${values.join(', ')})`);
    assert.is(values.at(-1), 1);
    await until(popup, () => / · loaded$/.test(document.querySelector<HTMLSelectElement>('#model')!.selectedOptions[0].textContent ?? ''), 'the picker to say loaded');

    await popup.fill('#prompt', 'Once upon a time');
    await popup.click('#send');
    await until(popup, () => document.querySelector<HTMLElement>('#output')!.dataset.done === 'true', 'the story');
    const story = await popup.evaluate(() => ({ text: document.querySelector('#output')!.textContent!, chunks: Number(document.querySelector<HTMLElement>('#output')!.dataset.chunks) }));
    assert.match(story.text, /[a-z]+ [a-z]+ [a-z]+/i, `a story (${story.text.slice(0, 80)})`);
    assert.ok(story.chunks >= 2, `streamed in chunks (${story.chunks})`);
  } finally {
    await popup.fill('#server-url', server!.url);
    await popup.click('#save');
    embedded.process.kill('SIGKILL');
    await embedded.exited;
    await rm(dataDir, { recursive: true, force: true });
  }
});

test.run();

function words(n: number): string {
  return Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
}

function startServer(upstream: Upstream, dataDir: string, port?: number): Promise<DevServer> {
  if (server) pastServers.push(server.output());
  return startDevServer({ TABAGENT_UPSTREAM_URL: upstream.url, TABAGENT_DATA_DIR: dataDir, TABAGENT_SHUTDOWN_GRACE_MS: '15000' }, port);
}

async function serverSessions(): Promise<{ active: number; by_state: Record<string, number> }> {
  return (await createSignalingClient({ url: server!.url }).rpc.get_stats.query()).sessions;
}

async function waitForStatus(popup: Page, state: string): Promise<void> {
  await until(popup, (wanted) => document.querySelector('#status')?.textContent === wanted, `status ${state}`, state, 60_000);
}

type PortMessage = Record<string, unknown> & { type: string; id?: string };
type PortWindow = { portLog: PortMessage[]; port: chrome.runtime.Port };

/**
 * Opens a port to the offscreen document from the popup page, as any extension page would, with the
 * extension's own port protocol, and posts `messages`; what comes back is kept in `window.portLog`.
 */
async function portStart(popup: Page, messages: PortMessage[]): Promise<void> {
  await popup.evaluate((messages) => {
    const page = window as unknown as PortWindow;
    page.portLog = [];
    page.port = chrome.runtime.connect({ name: 'tabagent' });
    page.port.onMessage.addListener((message) => page.portLog.push(message));
    for (const message of messages) page.port.postMessage(message);
  }, messages);
}

async function portPost(popup: Page, messages: PortMessage[]): Promise<void> {
  await popup.evaluate((messages) => {
    for (const message of messages) (window as unknown as PortWindow).port.postMessage(message);
  }, messages);
}

/** Resolves with the port's log once every id in `ids` has its final `result` or `error`. */
async function portWait(popup: Page, ids: string[]): Promise<PortMessage[]> {
  await until(
    popup,
    (ids) => ids.every((id) => (window as unknown as PortWindow).portLog.some((m) => m.id === id && (m.type === 'result' || m.type === 'error'))),
    `final answers for ${ids}`,
    ids,
    90_000,
  );
  await new Promise((resolve) => setTimeout(resolve, 300)); // a duplicate, were one coming, would be here by now
  return popup.evaluate(() => (window as unknown as PortWindow).portLog);
}

async function waitForChunks(popup: Page, id: string, n: number): Promise<void> {
  await until(
    popup,
    ([id, n]) => (window as unknown as PortWindow).portLog.filter((m) => m.type === 'chunk' && m.id === id).length >= n,
    `${n} chunks of ${id}`,
    [id, n] as const,
  );
}

/** Polls `check` in the page until it holds; fails with `what`, the popup's text and the logs. */
async function until<A>(popup: Page, check: (arg: A) => boolean, what: string, arg?: A, timeoutMs = 30_000): Promise<void> {
  try {
    await popup.waitForFunction(check as (arg: unknown) => boolean, arg as unknown, { timeout: timeoutMs, polling: 20 });
  } catch (error) {
    const text = await popup.evaluate(() => document.body.innerText).catch(() => '(popup gone)');
    const port = await popup.evaluate(() => JSON.stringify((window as unknown as Partial<PortWindow>).portLog)).catch(() => '(none)');
    const servers = [...pastServers, server?.output() ?? ''].map((output) => output.slice(-3000)).join('\n--- next server ---\n');
    throw new Error(`timed out waiting for ${what}: ${(error as Error).message}\npopup:\n${text}\nport log: ${port}\n${setup?.log.join('\n')}\nservers:\n${servers}`);
  }
}
