/**
 * The seed README's own "Chrome Extension Client" (`TabAgentWebRTC`), run as written in real headless Chromium
 * against the real dev server (`tsx src/main.ts`) from a cross-origin page: REST signaling with `text/plain`
 * bodies and no preflight, a channel the client created (label `tabagent`, maxRetransmits 3), the seed's
 * PascalCase `request_type` messages, and a graceful SIGINT shutdown as the browser sees it.
 */
import type { Browser, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { launchForPages } from '../fixtures/chromium.ts';
import { startDevServer, withTimeout, type DevServer } from '../fixtures/dev-server.ts';

const PAGE_ORIGIN = 'http://seed.test';

/**
 * The class from the seed README's "Chrome Extension Client", verbatim (trailing spaces on blank lines dropped;
 * backticks and `${` escaped only to sit in this template literal). `seedClient()` applies the two deviations.
 */
const SEED_CLASS = `
class TabAgentWebRTC {
  async connect() {
    // 1. Create RTCPeerConnection
    this.pc = new RTCPeerConnection({
      iceServers: [{ urls: 'stun:stun.l.google.com:19302' }]
    });

    // 2. Create data channel
    this.channel = this.pc.createDataChannel('tabagent', {
      ordered: true,
      maxRetransmits: 3
    });

    // 3. Get offer from server
    const { sessionId, offerSdp } = await fetch('http://localhost:8080/v1/webrtc/offer', {
      method: 'POST',
      body: JSON.stringify({ clientId: crypto.randomUUID() })
    }).then(r => r.json());

    // 4. Set remote description
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });

    // 5. Create answer
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);

    // 6. Send answer to server
    await fetch(\`http://localhost:8080/v1/webrtc/answer/\${sessionId}\`, {
      method: 'POST',
      body: JSON.stringify({ answerSdp: answer.sdp })
    });

    // 7. Handle ICE candidates
    this.pc.onicecandidate = async (event) => {
      if (event.candidate) {
        await fetch(\`http://localhost:8080/v1/webrtc/ice/\${sessionId}\`, {
          method: 'POST',
          body: JSON.stringify({ candidate: event.candidate })
        });
      }
    };

    // 8. Data channel ready!
    this.channel.onopen = () => console.log('WebRTC connected!');
    this.channel.onmessage = (event) => this.handleMessage(event.data);
  }

  async sendRequest(request) {
    const message = JSON.stringify(request);
    this.channel.send(message);
  }

  handleMessage(data) {
    const response = JSON.parse(data);
    // Handle ResponseValue from server
  }
}
`;

/** The seed client for this test's server: the only changes to the README's text, each checked to apply. */
function seedClient(serverUrl: string): string {
  const swap = (text: string, from: string, to: string, times: number) => {
    const found = text.split(from).length - 1;
    if (found !== times) throw new Error(`seed class: expected ${times}× ${JSON.stringify(from)}, found ${found}`);
    return text.replaceAll(from, to);
  };
  // Deviation 1: the seed hard-codes the server at localhost:8080 (offer, answer, ice); this server is on a free port.
  let text = swap(SEED_CLASS, 'http://localhost:8080', serverUrl, 3);
  // Deviation 2: no Google STUN server; there is no internet here, and host candidates suffice on one machine.
  text = swap(text, "iceServers: [{ urls: 'stun:stun.l.google.com:19302' }]", 'iceServers: []', 1);
  return text;
}

/**
 * Around the class, not in it. The seed assigns `channel.onopen`/`onmessage` only at the end of `connect()` and
 * never waits for the channel, so the harness replaces the instance's `handleMessage` (keeping the seed's own
 * parse) to collect frames, and polls `readyState` for 'open'.
 */
const HARNESS = `
window.seedHarness = {
  client: null,
  frames: [],
  async connect(timeoutMs) {
    const client = new TabAgentWebRTC();
    const seedHandleMessage = client.handleMessage.bind(client);
    client.handleMessage = (data) => {
      seedHandleMessage(data);
      this.frames.push(JSON.parse(data));
    };
    this.client = client;
    await client.connect();
    await this.until(() => client.channel.readyState === 'open', 'the seed channel to open', timeoutMs);
    const { label, ordered, maxRetransmits, readyState } = client.channel;
    return { label, ordered, maxRetransmits, readyState };
  },
  async request(request, timeoutMs) {
    await this.client.sendRequest(request);
    return this.frame('request_id', request.request_id, timeoutMs);
  },
  frame(field, value, timeoutMs) {
    const find = () => this.frames.find((f) => f[field] === value);
    return this.until(find, 'a frame with ' + field + ' = ' + JSON.stringify(value), timeoutMs).then(find);
  },
  async until(check, what, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) {
        const pc = this.client && this.client.pc;
        const states = pc ? ' (connection ' + pc.connectionState + ', ice ' + pc.iceConnectionState + ', channel ' + this.client.channel.readyState + ')' : '';
        throw new Error('timed out waiting for ' + what + states + '; frames so far: ' + JSON.stringify(this.frames));
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
};
`;

interface Frame {
  request_id?: string;
  type: string;
  [field: string]: unknown;
}

interface Context {
  server: DevServer;
  browser: Browser;
  page: Page;
  sessionId: string;
  /** The page's console, errors, failed requests and responses, for failure messages. */
  pageLog: string[];
  /** `METHOD url status` of every request the page made to the server (offer, answer, any ICE). */
  signaling: string[];
  offerHeaders: Record<string, string>;
  channel: { label: string; ordered: boolean; maxRetransmits: number | null; readyState: string };
}

let server: DevServer | undefined;
let browser: Browser | undefined;
let setup: Promise<Context> | undefined;
process.on('exit', () => server?.process.kill('SIGKILL'));

/** Server up, Chromium on a cross-origin page, the seed client connected: once, shared by every test. */
function connected(): Promise<Context> {
  return (setup ??= (async () => {
    server = await startDevServer({ TABAGENT_ALLOWED_ORIGINS: PAGE_ORIGIN });
    let context;
    ({ browser, context } = await launchForPages(PAGE_ORIGIN));
    const page = await context.newPage();
    const pageLog: string[] = [];
    page.on('console', (message) => pageLog.push(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => pageLog.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => pageLog.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
    const signaling: string[] = [];
    page.on('response', (response) => {
      const line = `${response.request().method()} ${response.url()} ${response.status()}`;
      pageLog.push(`response: ${line}`);
      if (response.url().startsWith(server!.url)) signaling.push(line);
    });
    await page.route(`${PAGE_ORIGIN}/**`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>seed</title>' }));
    await page.goto(`${PAGE_ORIGIN}/`);
    await page.addScriptTag({ content: `${seedClient(server.url)}\n${HARNESS}` });

    const offer = page.waitForResponse((response) => response.url() === `${server!.url}/v1/webrtc/offer`, { timeout: 15_000 });
    offer.catch(() => {}); // awaited below; a failed connect must not leave it unhandled
    try {
      const channel = await withTimeout(
        page.evaluate((ms) => (window as any).seedHarness.connect(ms), 15_000),
        20_000,
        'the seed client to connect',
      );
      const offerResponse = await offer;
      const { sessionId } = await offerResponse.json();
      return { server, browser, page, sessionId, pageLog, signaling, offerHeaders: offerResponse.headers(), channel };
    } catch (error) {
      const wrapped = new Error(`${(error as Error).message}\npage:\n${pageLog.join('\n')}\nserver:\n${server.output()}`);
      wrapped.stack = wrapped.message; // the message already holds the page's stack
      throw wrapped;
    }
  })());
}

function request(page: Page, body: Record<string, unknown>): Promise<Frame> {
  return page.evaluate(([body, ms]) => (window as any).seedHarness.request(body, ms), [body, 5_000] as const);
}

const seed = suite('seed client in Chromium');

seed.after(async () => {
  await browser?.close().catch(() => {});
  if (server && server.process.exitCode === null && server.process.signalCode === null) {
    server.process.kill('SIGKILL');
    await server.exited;
  }
});

seed('connects from a cross-origin page over the seed REST flow, on the channel it created', async () => {
  const { channel, offerHeaders, signaling } = await connected();
  assert.equal(channel, { label: 'tabagent', ordered: true, maxRetransmits: 3, readyState: 'open' });
  // The seed posts text/plain bodies, so no preflight: the CORS answer is on the POST itself.
  assert.is(offerHeaders['access-control-allow-origin'], PAGE_ORIGIN);
  // The seed never reads these statuses, so a refused answer or candidate would otherwise go unnoticed.
  // (It sets onicecandidate only after posting the answer, so Chromium has usually gathered everything by then
  // and trickles nothing: the connection rests on the offer's candidates and peer-reflexive ones.)
  assert.ok(signaling.some((line) => line.includes('/v1/webrtc/answer/')), `no answer posted: ${signaling.join('; ')}`);
  for (const line of signaling) assert.ok(line.endsWith(' 200'), `signaling call failed: ${line}`);
});

seed('answers Health with status ok', async () => {
  const { page } = await connected();
  const frame = await request(page, { request_type: 'Health', request_id: 'health-1' });
  assert.is(frame.type, 'health');
  assert.is(frame.status, 'ok');
});

seed('answers SystemInfo with CPU cores and total memory', async () => {
  const { page } = await connected();
  const frame = await request(page, { request_type: 'SystemInfo', request_id: 'system-1' });
  assert.is(frame.type, 'system_info');
  const { cpu, memory } = frame as unknown as { cpu: { cores: number }; memory: { total_bytes: number } };
  assert.ok(cpu.cores > 0, `cpu.cores is ${cpu.cores}`);
  assert.ok(memory.total_bytes > 0, `memory.total_bytes is ${memory.total_bytes}`);
});

seed('SetParams then GetParams gives the params back', async () => {
  const { page } = await connected();
  const params = { temperature: 0.3, max_tokens: 64 };
  const set = await request(page, { request_type: 'SetParams', request_id: 'params-set', params });
  assert.is(set.type, 'params');
  assert.equal(set.params, params);
  const got = await request(page, { request_type: 'GetParams', request_id: 'params-get' });
  assert.is(got.type, 'params');
  assert.equal(got.params, params);
});

seed('answers an unknown request_type with unknown_action and the request_id', async () => {
  const { page } = await connected();
  const frame = await request(page, { request_type: 'NoSuchRequest', request_id: 'unknown-1' });
  assert.is(frame.type, 'error');
  assert.is(frame.code, 'unknown_action');
  assert.is(frame.request_id, 'unknown-1');
});

seed('reports the session connected over REST, with both channels', async () => {
  const { server, sessionId } = await connected();
  const response = await fetch(`${server.url}/v1/webrtc/session/${encodeURIComponent(sessionId)}`);
  assert.is(response.status, 200);
  const info = await response.json();
  assert.is(info.state, 'connected');
  // The server's own `tabagent` channel (the seed page never handles it, but it is open) and the one the seed created.
  assert.is(info.counts.channels, 2);
});

seed('on SIGINT the page gets shutting_down and the server exits 0, logging "stopped"', async () => {
  const { server, page } = await connected();
  server.process.kill('SIGINT');
  const event = await page.evaluate((ms) => (window as any).seedHarness.frame('event', 'shutting_down', ms), 10_000);
  assert.is(event.type, 'event');
  assert.type(event.data?.grace_ms, 'number');
  const code = await withTimeout(server.exited, 15_000, () => `the server to exit after SIGINT; output:\n${server.output()}`);
  assert.is(code, 0, `exit code ${code}; output:\n${server.output()}`);
  assert.match(server.output(), /\bstopped\b/);
});

seed.run();
