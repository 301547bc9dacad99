/**
 * A plain web page (not an extension) open in two tabs of real headless Chromium, each tab loading the browser
 * bundle of the client library (dist/browser/tabagent-client.js) and holding its own session with the real dev
 * server (`tsx src/main.ts`), which answers chat from the in-process upstream test double.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildBrowser } from '../../scripts/build-browser.ts';
import { launchForPages } from '../fixtures/chromium.ts';
import { startDevServer, sleep, withTimeout, type DevServer } from '../fixtures/dev-server.ts';
import { startUpstream, type Upstream } from '../fixtures/upstream.ts';

const PAGE_ORIGIN = 'http://tabs.test';
const MODEL = 'llama3.2:3b';

/**
 * The page. Besides exposing the library, it keeps a log of what its own client saw and, through a
 * BroadcastChannel, of what the other tab's client saw: an entry about the other tab lands in this log only after
 * that event happened there, so the order of one log proves the order of events across tabs without any clock.
 */
const PAGE_HTML = `<!doctype html><title>tab</title>
<script type="module">
import * as tabagent from './tabagent-client.js';
window.tabagent = tabagent;
const bus = new BroadcastChannel('two-tabs');
const tab = (window.tab = { name: '', client: null, log: [], connection: [] });
bus.onmessage = ({ data }) => tab.log.push(data);
tab.note = (kind, index) => {
  const entry = { tab: tab.name, kind, index };
  tab.log.push(entry);
  bus.postMessage(entry);
};
tab.connect = async (name, url) => {
  tab.name = name;
  tab.client = await tabagent.connect({ url, iceServers: [] });
  tab.client.on('connection', (state) => tab.connection.push(state));
  return tab.client.sessionId;
};
tab.chat = async (prompt, model) => {
  const stream = tab.client.stream('chat', { model, messages: [{ role: 'user', content: prompt }] });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push({ delta: chunk.delta, index: chunk.index, request_id: chunk.request_id });
    tab.note('chunk', chunk.index);
  }
  const result = await stream.result;
  tab.note('final');
  return { requestId: stream.requestId, chunks, response: result.response };
};
</script>`;

interface Tab {
  name: string;
  page: Page;
  sessionId: string;
  /** The page's console, errors and failed requests, for failure messages. */
  log: string[];
}

interface Chat {
  requestId: string;
  chunks: { delta: string; index: number; request_id: string }[];
  response: string;
}

interface Context {
  server: DevServer;
  tabs: [Tab, Tab];
}

let upstream: Upstream | undefined;
let server: DevServer | undefined;
let browser: Browser | undefined;
let dataDir: string | undefined;
let setup: Promise<Context> | undefined;
process.on('exit', () => server?.process.kill('SIGKILL'));

/** Polls `check` until it returns something truthy; the failure names what it waited for and shows `log()`. */
async function until<T>(check: () => Promise<T> | T, what: string, log: () => string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${log()}`);
    await sleep(50);
  }
}

function describe(tabs: Tab[]): string {
  return [...tabs.map((tab) => `tab ${tab.name}:\n  ${tab.log.join('\n  ')}`), `server:\n${server?.output() ?? ''}`].join('\n');
}

/** Runs `run` in the page; a failure carries the page logs and the server output. */
async function inPage<T, A>(tab: Tab, all: Tab[], run: (arg: A) => T | Promise<T>, arg: A, what: string): Promise<T> {
  try {
    return await withTimeout(tab.page.evaluate(run as never, arg) as Promise<T>, 20_000, what);
  } catch (error) {
    throw new Error(`tab ${tab.name}: ${(error as Error).message}\n${describe(all)}`);
  }
}

async function sessionState(sessionId: string): Promise<string> {
  const response = await fetch(`${server!.url}/v1/webrtc/session/${encodeURIComponent(sessionId)}`);
  return response.ok ? ((await response.json()) as { state: string }).state : `HTTP ${response.status}`;
}

async function openTab(context: BrowserContext, name: string, all: Tab[]): Promise<Tab> {
  const page = await context.newPage();
  const tab: Tab = { name, page, sessionId: '', log: [] };
  all.push(tab);
  page.on('console', (message) => tab.log.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => tab.log.push(`pageerror: ${error.message}`));
  page.on('requestfailed', (request) => tab.log.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  await page.goto(`${PAGE_ORIGIN}/`);
  await until(() => page.evaluate(() => Boolean((window as any).tab?.connect)), `tab ${name} to load the bundle`, () => describe(all));
  return tab;
}

/** Upstream, dev server, bundle, Chromium with two tabs of the page (not yet connected): once, for every test. */
function ready(): Promise<Context> {
  return (setup ??= (async () => {
    const { clientBundle } = await buildBrowser();
    const bundle = await readFile(clientBundle);
    upstream = await startUpstream({ tokenDelayMs: 30 });
    dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-two-tabs-'));
    server = await startDevServer({
      TABAGENT_ALLOWED_ORIGINS: PAGE_ORIGIN,
      TABAGENT_UPSTREAM_URL: upstream.url,
      TABAGENT_DATA_DIR: dataDir,
      // Chromium tears a closed tab down without closing its SCTP association, so the server only sees ICE go
      // `disconnected` (about 5 s later) and then waits this grace (default 10 s) before suspending the session.
      TABAGENT_DISCONNECT_GRACE_MS: '1000',
    });
    let context: BrowserContext;
    ({ browser, context } = await launchForPages(PAGE_ORIGIN));
    await context.route(`${PAGE_ORIGIN}/**`, (route) => {
      const { pathname } = new URL(route.request().url());
      if (pathname === '/') return route.fulfill({ contentType: 'text/html', body: PAGE_HTML });
      if (pathname === '/tabagent-client.js') return route.fulfill({ contentType: 'text/javascript', body: bundle });
      return route.fulfill({ status: 404, body: '' }); // the source map, favicon
    });
    const tabs: Tab[] = [];
    await openTab(context, 'A', tabs);
    await openTab(context, 'B', tabs);
    return { server, tabs: tabs as [Tab, Tab] };
  })());
}

function chat(tab: Tab, all: Tab[], prompt: string): Promise<Chat> {
  return inPage(tab, all, ([prompt, model]) => (window as any).tab.chat(prompt, model), [prompt, MODEL], `tab ${tab.name} to chat "${prompt}"`);
}

/** One tab's own stream: the deltas make up the answer, indexes 0..n-1 once each, one request id throughout. */
function assertOwnStream(name: string, chat: Chat, words: string[], foreign: string[]): void {
  const deltas = chat.chunks.map((chunk) => chunk.delta);
  assert.is(deltas.join(''), chat.response, `tab ${name}: the deltas should make up the final response`);
  assert.is(chat.response, `echo: ${words.join(' ')}`, `tab ${name}: the answer should echo its own prompt`);
  assert.equal(chat.chunks.map((chunk) => chunk.index), [...deltas.keys()], `tab ${name}: chunk indexes`);
  for (const chunk of chat.chunks) assert.is(chunk.request_id, chat.requestId, `tab ${name}: a chunk of another request`);
  for (const word of foreign) assert.not.ok(chat.response.includes(word), `tab ${name} got "${word}" from the other tab`);
}

const tabs = suite('two tabs of a plain page, one session each');

tabs.after(async () => {
  const tab = setup && (await setup.catch(() => undefined))?.tabs.find((t) => !t.page.isClosed());
  await tab?.page.evaluate(() => (window as any).tab.client?.close()).catch(() => {});
  await browser?.close().catch(() => {});
  server?.process.kill('SIGKILL');
  await server?.exited;
  await upstream?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

tabs('both tabs connect at once, on different sessions, each healthy and connected', async () => {
  const { server, tabs: all } = await ready();
  const ids = await Promise.all(
    all.map((tab) => inPage(tab, all, ([name, url]) => (window as any).tab.connect(name, url), [tab.name, server.url], `tab ${tab.name} to connect`)),
  );
  all.forEach((tab, i) => (tab.sessionId = ids[i]));
  assert.type(ids[0], 'string');
  assert.is.not(ids[0], ids[1], 'each tab should get its own session');
  for (const tab of all) {
    const health = await inPage(tab, all, () => (window as any).tab.client.health(), undefined, `tab ${tab.name}: health()`);
    assert.is(health.status, 'ok', `tab ${tab.name}: ${JSON.stringify(health)}`);
    assert.is(await sessionState(tab.sessionId), 'connected', `tab ${tab.name}: session state`);
  }
});

tabs('both tabs stream a chat at the same time, each getting exactly its own tokens', async () => {
  const { tabs: all } = await ready();
  const [a, b] = all;
  const wordsA = ['[slow]', 'alpha', 'one', 'two', 'three'];
  const wordsB = ['[slow]', 'beta', 'four', 'five', 'six'];
  const [chatA, chatB] = await Promise.all([chat(a, all, wordsA.join(' ')), chat(b, all, wordsB.join(' '))]);
  assertOwnStream('A', chatA, wordsA, wordsB.slice(1));
  assertOwnStream('B', chatB, wordsB, wordsA.slice(1));
  // Overlap, both ways: each tab heard of a chunk from the other tab before its own final answer.
  for (const [tab, other] of [[a, b], [b, a]] as const) {
    const log = await tab.page.evaluate(() => (window as any).tab.log as { tab: string; kind: string }[]);
    const ownFinal = log.findIndex((entry) => entry.tab === tab.name && entry.kind === 'final');
    const otherChunk = log.findIndex((entry) => entry.tab === other.name && entry.kind === 'chunk');
    assert.ok(otherChunk !== -1 && otherChunk < ownFinal, `tab ${tab.name} finished before tab ${other.name} streamed: ${JSON.stringify(log)}`);
  }
});

tabs('closing one tab ends only its session: the other keeps working on its own', async () => {
  const { tabs: all } = await ready();
  const [a, b] = all;
  // The tab goes away without client.close(), as when a user closes it.
  await a.page.close();
  const health = await inPage(b, all, () => (window as any).tab.client.health(), undefined, 'tab B: health() after A closed');
  assert.is(health.status, 'ok');
  const words = ['[slow]', 'still', 'here'];
  assertOwnStream('B', await chat(b, all, words.join(' ')), words, []);
  // A's session waits, suspended, for a resume that will not come (TABAGENT_RESUME_GRACE_MS); B's is untouched.
  const suspended = async () => (await sessionState(a.sessionId)) === 'suspended';
  await until(suspended, "the closed tab's session to be suspended", () => describe(all), 25_000);
  assert.is(await sessionState(b.sessionId), 'connected');
  // B's client never saw its own link drop (it reports only changes of its connection state).
  assert.equal(await b.page.evaluate(() => (window as any).tab.connection), []);
});

tabs.run();
