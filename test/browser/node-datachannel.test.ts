/**
 * Chrome is the real client: headless Chromium against the dev server (`tsx src/main.ts`) with its peers on
 * node-datachannel (TABAGENT_PEER_BACKEND), in the peer process. Both ways a page connects: the client library's
 * browser bundle (tRPC signaling, trickle ICE), and the README's plain `fetch` flow (the offer's SDP carries the
 * server's candidates; Chromium's own are mDNS `.local` names, which libdatachannel meets as peer-reflexive ones).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildBrowser } from '../../scripts/build-browser.ts';
import { launchForPages } from '../fixtures/chromium.ts';
import { startDevServer, withTimeout, type DevServer } from '../fixtures/dev-server.ts';

const PAGE_ORIGIN = 'http://ndc.test';
const PAGE_HTML = `<!doctype html><title>ndc</title>
<script type="module">import * as tabagent from './tabagent-client.js'; window.tabagent = tabagent;</script>`;

let server: DevServer | undefined;
let browser: Browser | undefined;
let dataDir: string | undefined;
let page: Page | undefined;
const pageLog: string[] = [];
process.on('exit', () => server?.process.kill('SIGKILL'));

const test = suite('Chromium against node-datachannel peers');

/** Dev server, bundle and a Chromium page: once, for both tests (in a test, so that a failure here is reported). */
let setup: Promise<void> | undefined;
function ready(): Promise<void> {
  return (setup ??= (async () => {
    const bundle = await readFile((await buildBrowser()).clientBundle);
    dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-ndc-browser-'));
    server = await startDevServer({
      TABAGENT_ALLOWED_ORIGINS: PAGE_ORIGIN,
      TABAGENT_UPSTREAM_URL: 'off',
      TABAGENT_DATA_DIR: dataDir,
      TABAGENT_PEER_BACKEND: 'node-datachannel',
      TABAGENT_PEER_PROCESSES: '1',
    });
    let context;
    ({ browser, context } = await launchForPages(PAGE_ORIGIN));
    await context.route(`${PAGE_ORIGIN}/**`, (route) => {
      const { pathname } = new URL(route.request().url());
      if (pathname === '/') return route.fulfill({ contentType: 'text/html', body: PAGE_HTML });
      if (pathname === '/tabagent-client.js') return route.fulfill({ contentType: 'text/javascript', body: bundle });
      return route.fulfill({ status: 404, body: '' });
    });
    page = await context.newPage();
    page.on('console', (message) => pageLog.push(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => pageLog.push(`pageerror: ${error.message}`));
    await page.goto(`${PAGE_ORIGIN}/`);
    await page.waitForFunction(() => Boolean((window as any).tabagent?.connect));
  })());
}

test.after(async () => {
  await browser?.close().catch(() => {});
  server?.process.kill('SIGKILL');
  await server?.exited;
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Runs `run` in the page; a failure carries the page's log and the server's output. */
async function inPage<T, A>(run: (arg: A) => Promise<T>, arg: A, what: string): Promise<T> {
  try {
    return await withTimeout(page!.evaluate(run as never, arg) as Promise<T>, 30_000, what);
  } catch (error) {
    throw new Error(`${(error as Error).message}\npage:\n  ${pageLog.join('\n  ')}\nserver:\n${server?.output()}`);
  }
}

test('the client library connects, gets answers, and moves 8 MiB both ways, five sessions in a row', async () => {
  await ready();
  const results = await inPage(
    async (url: string) => {
      const { connect } = (window as any).tabagent;
      const payload = new Uint8Array(8 << 20).map((_, i) => (i * 31) % 256);
      const seen = [];
      for (let i = 0; i < 5; i++) {
        const client = await connect({ url, iceServers: [], reconnect: false });
        const health = await client.health();
        const { attachment } = await client.call('echo', {}, { attachment: payload });
        seen.push({ status: health.status, whole: attachment?.length === payload.length && attachment.every((b: number, j: number) => b === payload[j]) });
        await client.close();
      }
      return seen;
    },
    server!.url,
    'the page to connect five times',
  );
  assert.equal(results, Array(5).fill({ status: 'ok', whole: true }));
});

/**
 * The README's plain page, as source: tsx would name its inner functions with a helper the page does not have.
 * Resolves with the server's answer to `health` on its own `tabagent` channel.
 */
const PLAIN_PAGE = `async (url) => {
  const post = (route, body) => fetch(url + '/v1/webrtc/' + route, { method: 'POST', body: JSON.stringify(body) });
  const pc = new RTCPeerConnection();
  const { sessionId, offerSdp } = await (await post('offer', { clientId: crypto.randomUUID() })).json();
  const opened = new Promise((resolve) => {
    pc.ondatachannel = ({ channel }) => (channel.onopen = () => resolve(channel));
  });
  pc.onicecandidate = ({ candidate }) => candidate && post('ice/' + sessionId, { candidate });
  await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  await post('answer/' + sessionId, { answerSdp: answer.sdp });
  const channel = await opened;
  const reply = new Promise((resolve) => (channel.onmessage = ({ data }) => resolve(JSON.parse(data))));
  channel.send(JSON.stringify({ action: 'health', request_id: 'r1' }));
  const frame = await reply;
  pc.close();
  return frame;
}`;

test('Chromium\'s own RTCPeerConnection, the README\'s plain fetch way: the server\'s channel opens and answers', async () => {
  await ready();
  const frame = await inPage<{ request_id: string; type: string; status: string }, [string, string]>(
    ([source, url]) => (0, eval)(source)(url),
    [PLAIN_PAGE, server!.url],
    'the plain page to connect',
  );
  assert.is(frame.request_id, 'r1');
  assert.is(frame.type, 'health');
  assert.is(frame.status, 'ok');
});

test.run();
