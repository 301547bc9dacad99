/**
 * Proves the upstream test double (test/fixtures/upstream.ts) keeps to the OpenAI and Ollama shapes it claims,
 * so the tests built on it cannot drift from the real APIs silently.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startUpstream, type Upstream } from './fixtures/upstream.ts';

const test = suite<{ up: Upstream }>('upstream fixture', {} as { up: Upstream });
test.before(async (ctx) => {
  ctx.up = await startUpstream({ ollama: true, rerank: true, apiKey: 'sk-test' });
});
test.after(async (ctx) => ctx.up.close());

const auth = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };
const post = (up: Upstream, path: string, body: unknown, init: RequestInit = {}) =>
  fetch(up.url + path, { method: 'POST', headers: auth, body: JSON.stringify(body), ...init });

/** SSE events as `{ event, data }`, split on blank lines as the spec frames them. */
function sse(text: string): Array<{ event?: string; data: string }> {
  return text.split('\n\n').filter(Boolean).map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    return { event, data: lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') };
  });
}

test('chat stream: role chunk, token deltas, finish, usage chunk with choices [], then [DONE]', async ({ up }) => {
  const res = await post(up, '/v1/chat/completions', {
    model: 'llama3.2:3b', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello big world' }],
  });
  assert.is(res.headers.get('content-type'), 'text/event-stream');
  const events = sse(await res.text());
  assert.is(events[events.length - 1].data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.flatMap((c) => c.choices).map((c) => c.delta.content ?? '').join('');
  assert.is(text, 'echo: hello big world');
  assert.is(chunks.at(-2).choices[0].finish_reason, 'stop');
  assert.ok(chunks.slice(0, -1).every((c) => c.object === 'chat.completion.chunk' && c.usage === null));
  assert.equal(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
});

test('chat unary honours max_tokens with finish_reason length', async ({ up }) => {
  const body = await (await post(up, '/v1/chat/completions', { model: 'llama3.2:3b', max_tokens: 2, messages: [{ role: 'user', content: 'a b c' }] })).json();
  assert.is(body.object, 'chat.completion');
  assert.equal(body.choices[0].message, { role: 'assistant', content: 'echo: a', refusal: null });
  assert.is(body.choices[0].finish_reason, 'length');
});

test('responses stream: the documented event sequence, event names matching data.type', async ({ up }) => {
  const events = sse(await (await post(up, '/v1/responses', { model: 'llama3.2:3b', input: 'hi there', stream: true })).text());
  assert.equal(events.map((e) => e.event), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  const data = events.map((e) => JSON.parse(e.data));
  data.forEach((d, i) => (assert.is(d.type, events[i].event), assert.is(d.sequence_number, i)));
  assert.equal(data[4], { type: 'response.output_text.delta', sequence_number: 4, item_id: data[2].item.id, output_index: 0, content_index: 0, delta: 'echo:', logprobs: [] });
  const done = data.at(-1).response;
  assert.is(done.status, 'completed');
  assert.is(done.output[0].content[0].text, 'echo: hi there');
  assert.equal(done.usage.total_tokens, 5);
  const cut = sse(await (await post(up, '/v1/responses', { model: 'llama3.2:3b', input: 'hi there', stream: true, max_output_tokens: 1 })).text());
  const last = JSON.parse(cut.at(-1)!.data);
  assert.is(last.type, 'response.incomplete');
  assert.equal(last.response.incomplete_details, { reason: 'max_output_tokens' });
});

test('pull streams NDJSON progress and adds the model; a missing manifest streams an error line', async ({ up }) => {
  const lines = (await (await post(up, '/api/pull', { model: 'gemma2:2b' })).text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines[0], { status: 'pulling manifest' });
  const layer = lines[1];
  assert.match(layer.status, /^pulling [0-9a-f]{12}$/);
  assert.is(layer.digest, `sha256:${layer.digest.slice(7)}`);
  assert.is(layer.digest.slice(7, 19), layer.status.slice(8));
  assert.ok(lines.some((l) => l.completed === l.total && l.digest === layer.digest));
  assert.equal(lines.slice(-3).map((l) => l.status), ['verifying sha256 digest', 'writing manifest', 'success']);
  const tags = await (await fetch(`${up.url}/api/tags`, { headers: auth })).json();
  assert.ok(tags.models.some((m: { name: string }) => m.name === 'gemma2:2b'));
  const bad = await post(up, '/api/pull', { model: 'missing-model' });
  assert.is(bad.status, 200);
  assert.equal((await bad.text()).trim().split('\n').map((l) => JSON.parse(l)), [{ status: 'pulling manifest' }, { error: 'pull model manifest: file does not exist' }]);
});

test('load, ps and unload through /api/generate keep_alive', async ({ up }) => {
  const load = await (await post(up, '/api/generate', { model: 'qwen2.5:7b-instruct-q4_K_M', keep_alive: '10m' })).json();
  assert.is(load.done_reason, 'load');
  const ps = await (await fetch(`${up.url}/api/ps`, { headers: auth })).json();
  const entry = ps.models.find((m: { name: string }) => m.name === 'qwen2.5:7b-instruct-q4_K_M');
  assert.equal(Object.keys(entry).sort(), ['context_length', 'details', 'digest', 'expires_at', 'model', 'name', 'size', 'size_vram']);
  const unload = await (await post(up, '/api/generate', { model: 'qwen2.5:7b-instruct-q4_K_M', keep_alive: 0 })).json();
  assert.is(unload.done_reason, 'unload');
  assert.not.ok(up.loaded.has('qwen2.5:7b-instruct-q4_K_M'));
});

test('401, 404 and Ollama error objects', async ({ up }) => {
  const denied = await fetch(`${up.url}/v1/models`);
  assert.is(denied.status, 401);
  assert.equal(await denied.json(), { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  const missing = await post(up, '/v1/chat/completions', { model: 'nope', messages: [] });
  assert.is(missing.status, 404);
  assert.equal(await missing.json(), { error: { message: 'The model `nope` does not exist.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
  const show = await post(up, '/api/show', { model: 'nope' });
  assert.is(show.status, 404);
  assert.equal(await show.json(), { error: "model 'nope' not found" });
});

test('rerank sorts by word overlap, cut to top_n', async ({ up }) => {
  const body = await (await post(up, '/v1/rerank', { model: 'nomic-embed-text', query: 'red apple pie', top_n: 2, documents: ['blue sky', 'apple pie recipe', 'red apple'] })).json();
  assert.is(body.object, 'list');
  assert.equal(body.results.map((r: { index: number }) => r.index), [1, 2]);
  assert.ok(body.results[0].relevance_score >= body.results[1].relevance_score);
});

test('embeddings: deterministic 32-dim unit vectors, shared words closer', async ({ up }) => {
  const input = ['the cat sat', 'the cat sat', 'a cat sat down', 'quantum flux capacitor'];
  const body = await (await post(up, '/v1/embeddings', { model: 'nomic-embed-text', input })).json();
  const vectors: number[][] = body.data.map((d: { embedding: number[] }) => d.embedding);
  assert.is(body.object, 'list');
  assert.equal(body.data.map((d: { index: number; object: string }) => [d.index, d.object]), input.map((_, i) => [i, 'embedding']));
  assert.ok(vectors.every((v) => v.length === 32 && Math.abs(Math.hypot(...v) - 1) < 1e-9));
  assert.equal(vectors[0], vectors[1]);
  const cos = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  assert.ok(cos(vectors[0], vectors[2]) > cos(vectors[0], vectors[3]));
});

test('aborting a [slow] stream is recorded in aborted and resolves nextAbort', async ({ up }) => {
  const controller = new AbortController();
  const gone = up.nextAbort('/v1/chat/completions');
  const res = await post(up, '/v1/chat/completions', { model: 'llama3.2:3b', stream: true, messages: [{ role: 'user', content: '[slow] one two three four' }] }, { signal: controller.signal });
  const reader = res.body!.getReader();
  await reader.read();
  controller.abort();
  await gone;
  assert.ok(up.aborted.includes('/v1/chat/completions'));
});

test.run();
