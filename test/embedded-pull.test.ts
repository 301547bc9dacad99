/**
 * pull_model on the embedded engine: the test model served by a loopback HTTP server (as a model hub would serve
 * it, with Range requests), downloaded with progress, resumed after a cancel, checked against its digest.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TabAgentClient } from '../src/client/index.ts';
import { appError } from './fixtures/errors.ts';
import { ask, MODEL_FILE, MODEL_SHA256, modelsCopy, startModelServer } from './fixtures/models.ts';

const BYTES = readFileSync(MODEL_FILE);
const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface Hub {
  url: string;
  /** The Range header of each file request ('' for none). */
  ranges: string[];
  /** While set, the file is sent in 16 KiB pieces 20 ms apart, so a test can cancel midway. */
  slow: boolean;
  close(): Promise<void>;
}

/** Serves the model at `/files/<name>.gguf` and as Hugging Face lays a repository out, with Range support. */
async function startHub(): Promise<Hub> {
  const hub = { ranges: [] as string[], slow: false } as Hub;
  const server: Server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://hub');
    if (url.pathname === '/api/models/karpathy/tinyllamas') {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ siblings: [{ rfilename: 'README.md' }, { rfilename: 'stories260K-F32.gguf' }, { rfilename: 'stories260K-Q8_0.gguf' }] }));
      return;
    }
    const file = /^\/(files\/[\w.-]+\.gguf|karpathy\/tinyllamas\/resolve\/main\/[\w.-]+\.gguf)$/.test(url.pathname);
    if (!file) {
      response.writeHead(404).end('no such file');
      return;
    }
    hub.ranges.push(request.headers.range ?? '');
    const from = Number(/^bytes=(\d+)-$/.exec(request.headers.range ?? '')?.[1] ?? 0);
    const body = BYTES.subarray(from);
    response.writeHead(from > 0 ? 206 : 200, {
      'content-length': body.length,
      ...(from > 0 ? { 'content-range': `bytes ${from}-${BYTES.length - 1}/${BYTES.length}` } : {}),
    });
    for (let at = 0; at < body.length; at += 16_384) {
      if (response.destroyed) return;
      response.write(body.subarray(at, at + 16_384));
      if (hub.slow) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise((resolve) => server.close(() => resolve()));
  return hub;
}

/** A hub, and a server whose models directory starts empty; `hubUrl` points the server's model hub at it. */
async function withHub(run: (stack: { hub: Hub; dir: string; client: TabAgentClient }) => Promise<void>, { hubUrl = false } = {}) {
  const hub = await startHub();
  const dir = await modelsCopy([]);
  const server = await startModelServer({ modelsDir: dir, ...(hubUrl ? { modelHubUrl: hub.url } : {}) });
  try {
    await run({ hub, dir, client: await server.client() });
  } finally {
    await server.close();
    await hub.close();
  }
}

const pull = suite('embedded pull_model');

pull('a GGUF URL: downloaded with progress events, checked against its digest, then served', () =>
  withHub(async ({ hub, dir, client }) => {
    const progress: { status: string; completed_bytes?: number; total_bytes?: number }[] = [];
    client.on('model_pull_progress', (data) => progress.push(data));
    const pulled = await client.request('pull_model', { model: `${hub.url}/files/tiny.gguf`, digest: `sha256:${MODEL_SHA256}` });
    assert.equal(pulled, { type: 'model_pulled', model: 'tiny', status: 'success' });
    assert.is(progress[0].status, 'downloading');
    assert.ok(progress.some((p) => p.status === 'downloading' && p.completed_bytes! > 0 && p.completed_bytes! < BYTES.length), 'progress midway');
    assert.equal(progress.at(-1), { model: 'tiny', status: 'success', completed_bytes: BYTES.length, total_bytes: BYTES.length });
    assert.is(sha256Hex(readFileSync(path.join(dir, 'tiny.gguf'))), MODEL_SHA256);
    const answer = await client.request('chat', { ...ask('Hi'), model: 'tiny', max_tokens: 4 });
    assert.is(answer.usage?.completion_tokens, 4);
  }),
);

pull('a cancelled pull resumes where it stopped, with a Range request, and ends whole', () =>
  withHub(async ({ hub, dir, client }) => {
    hub.slow = true;
    const controller = new AbortController();
    client.on('model_pull_progress', (data) => {
      if ((data.completed_bytes ?? 0) > 100_000) controller.abort();
    });
    const cancelled = await appError(client.request('pull_model', { model: `${hub.url}/files/resumed.gguf` }, { signal: controller.signal }));
    assert.is(cancelled.code, 'cancelled');
    assert.equal((await client.request('list_models')).models, [], 'no half model is listed');
    hub.slow = false;
    const resumed = await client.request('pull_model', { model: `${hub.url}/files/resumed.gguf`, digest: MODEL_SHA256 });
    assert.is(resumed.status, 'success');
    const range = hub.ranges.at(-1)!;
    assert.match(range, /^bytes=\d+-$/);
    assert.ok(Number(range.slice(6, -1)) > 100_000, `it asked for the rest only (${range})`);
    assert.is(sha256Hex(readFileSync(path.join(dir, 'resumed.gguf'))), MODEL_SHA256);
  }),
);

pull('a wrong digest keeps nothing; a file that is not GGUF is refused; a missing one is not_found', () =>
  withHub(async ({ hub, client }) => {
    const wrong = await appError(client.request('pull_model', { model: `${hub.url}/files/bad.gguf`, digest: '0'.repeat(64) }));
    assert.is(wrong.code, 'upstream_error');
    assert.match(wrong.message, /sha256/);
    assert.equal((await client.request('list_models')).models, []);
    assert.is((await appError(client.request('pull_model', { model: `${hub.url}/files/missing.txt` }))).code, 'invalid_request');
    assert.is((await appError(client.request('pull_model', { model: `${hub.url}/nowhere/x.gguf` }))).code, 'not_found');
    assert.is((await appError(client.request('pull_model', { model: 'llama3.2' }))).code, 'invalid_request', 'an Ollama name means nothing here');
  }),
);

pull('owner/repo/file.gguf and owner/repo with a quantization come from the model hub (TABAGENT_MODEL_HUB_URL)', () =>
  withHub(async ({ client }) => {
    assert.is((await client.request('pull_model', { model: 'karpathy/tinyllamas/stories260K-F32.gguf' })).model, 'stories260K-F32');
    assert.is((await client.request('pull_model', { model: 'karpathy/tinyllamas', quantization: 'q8_0' })).model, 'stories260K-Q8_0');
    const several = await appError(client.request('pull_model', { model: 'karpathy/tinyllamas' }));
    assert.is(several.code, 'invalid_request');
    assert.match(several.message, /F32, Q8_0/);
    assert.equal((await client.request('get_model_quants', { repo_id: 'stories260K' })).quants.map((q) => q.variant), ['F32', 'Q8_0']);
    assert.equal((await client.request('list_models')).models.map((m) => m.id), ['stories260K-F32', 'stories260K-Q8_0']);
    assert.is((await client.request('load_model', { model_id: 'stories260K', variant: 'Q8_0' })).model_id, 'stories260K-Q8_0');
  }, { hubUrl: true }),
);

pull.run();
