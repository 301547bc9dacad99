/**
 * The inference engine against a test upstream (test/fixtures/upstream.ts: the OpenAI- and Ollama-compatible
 * server we cannot run for real here, for want of model weights), driven end to end from a real wrtc client
 * over the data channel, and over tRPC.
 */
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppRouter } from '../routers/index.ts';
import type { TabAgentClient } from '../src/client/index.ts';
import type { ConfigInput } from '../src/config.ts';
import { AppError } from '../src/errors.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';
import { startUpstream, type Upstream, type UpstreamOptions } from './fixtures/upstream.ts';
import { appError } from './fixtures/errors.ts';

interface Stack {
  upstream: Upstream;
  server: TestServer;
  client: TabAgentClient;
}

async function withStack(options: UpstreamOptions, run: (stack: Stack) => Promise<void>, config: ConfigInput = {}) {
  const upstream = await startUpstream(options);
  const server = await startServer({ upstreamUrl: upstream.url, ...config });
  try {
    await run({ upstream, server, client: await server.client() });
  } finally {
    await server.close();
    await upstream.close();
  }
}


const user = (content: string) => ({ messages: [{ role: 'user' as const, content }] });
const lastBody = (upstream: Upstream, path: string) =>
  [...upstream.requests].reverse().find((r) => r.path === path)?.body as Record<string, unknown>;

const generation = suite('generation');

generation('chat streams the upstream tokens in order, then one answer with usage and finish_reason', () =>
  withStack({}, async ({ client, upstream }) => {
    const stream = client.stream('chat', { model: 'llama3.2:3b', ...user('hello big world') });
    const deltas: string[] = [];
    for await (const chunk of stream) deltas.push(chunk.delta);
    assert.equal(deltas, ['echo:', ' hello', ' big', ' world']);
    const final = await stream.result;
    assert.is(final.response, 'echo: hello big world');
    assert.is(final.finish_reason, 'stop');
    assert.equal(final.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    const sent = lastBody(upstream, '/v1/chat/completions');
    assert.is(sent.stream, true);
    assert.equal(sent.stream_options, { include_usage: true });
  }),
);

generation('chat without stream is one answer; max_tokens cuts it with finish_reason length', () =>
  withStack({}, async ({ client }) => {
    const whole = await client.request('chat', { model: 'llama3.2:3b', ...user('one two three') });
    assert.is(whole.response, 'echo: one two three');
    const cut = await client.request('chat', { model: 'llama3.2:3b', max_tokens: 2, ...user('one two three') });
    assert.is(cut.response, 'echo: one');
    assert.is(cut.finish_reason, 'length');
  }),
);

generation('generate streams a text completion of the prompt', () =>
  withStack({}, async ({ client, upstream }) => {
    const stream = client.stream('generate', { model: 'llama3.2:3b', prompt: 'the quick fox' });
    const text: string[] = [];
    for await (const chunk of stream) text.push(chunk.delta);
    assert.is(text.join(''), 'echo: the quick fox');
    assert.is((await stream.result).type, 'generate_response');
    assert.is(lastBody(upstream, '/v1/completions').prompt, 'the quick fox');
  }),
);

generation('responses uses the Responses API, streamed and not, with max_output_tokens', () =>
  withStack({}, async ({ client, upstream }) => {
    const stream = client.stream('responses', { model: 'llama3.2:3b', input: 'red green blue' });
    const text: string[] = [];
    for await (const chunk of stream) text.push(chunk.delta);
    assert.is(text.join(''), 'echo: red green blue');
    assert.is((await stream.result).usage?.completion_tokens, 4);
    const cut = await client.request('responses', { model: 'llama3.2:3b', input: 'red green blue', max_tokens: 1 });
    assert.is(cut.response, 'echo:');
    assert.is(cut.finish_reason, 'length');
    assert.is(lastBody(upstream, '/v1/responses').max_output_tokens, 1);
  }),
);

generation('responses falls back to chat completions where the upstream has no Responses API', () =>
  withStack({ responses: false }, async ({ client, upstream }) => {
    const answer = await client.request('responses', { model: 'llama3.2:3b', input: 'falls back', instructions: 'be brief' });
    assert.is(answer.response, 'echo: falls back');
    const sent = lastBody(upstream, '/v1/chat/completions');
    assert.equal(sent.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'falls back' },
    ]);
  }),
);

generation('rpc.chat over tRPC reaches the same upstream', () =>
  withStack({}, async ({ server }) => {
    const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${server.url}/trpc`, transformer: superjson })] });
    const answer = await trpc.rpc.chat.mutate({ model: 'llama3.2:3b', ...user('via trpc') });
    assert.is(answer.type, 'chat_response');
    assert.is(answer.response, 'echo: via trpc');
  }),
);

generation.run();

const cancellation = suite('cancellation');

cancellation('stop_generation aborts the upstream request at once, and the answer is cancelled', () =>
  withStack({}, async ({ client, upstream }) => {
    const stream = client.stream('chat', { model: 'llama3.2:3b', ...user('[slow] a b c d e f g h i j') });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    const closed = upstream.nextAbort('/v1/chat/completions');
    await client.cancel(stream.requestId);
    await closed; // the upstream saw its request closed
    assert.is((await appError(stream.result)).code, 'cancelled');
  }),
);

cancellation('closing the session aborts its upstream requests', () =>
  withStack({}, async ({ client, upstream, server }) => {
    const pending = client.request('chat', { model: 'llama3.2:3b', ...user('[slow] a b c d e f g h') }).catch(() => {});
    await until(() => upstream.requests.some((r) => r.path === '/v1/chat/completions'), 'the upstream request');
    const closed = upstream.nextAbort('/v1/chat/completions');
    server.app.sessions.close(client.sessionId);
    await closed;
    await pending;
  }),
);

cancellation.run();

const errors = suite('upstream errors');

errors('an unreachable upstream is backend_unavailable, saying how to configure one', async () => {
  const upstream = await startUpstream();
  const url = upstream.url;
  await upstream.close(); // nothing listens there now
  const server = await startServer({ upstreamUrl: url });
  try {
    const client = await server.client();
    const error = await appError(client.request('chat', { model: 'm', ...user('hi') }));
    assert.is(error.code, 'backend_unavailable');
    assert.match(error.message, /Cannot reach the inference upstream/);
    assert.match(error.message, /TABAGENT_UPSTREAM_URL/);
  } finally {
    await server.close();
  }
});

errors('an upstream that goes silent is a timeout, and its request is closed', () =>
  withStack(
    {},
    async ({ client, upstream }) => {
      const closed = upstream.nextAbort('/v1/chat/completions');
      const error = await appError(client.request('chat', { model: 'llama3.2:3b', ...user('[hang]') }));
      assert.is(error.code, 'timeout');
      await closed;
    },
    { upstreamIdleTimeoutMs: 300 },
  ),
);

errors('4xx answers keep the upstream message: unknown model is not_found, a bad key is backend_unavailable', async () => {
  await withStack({}, async ({ client }) => {
    const error = await appError(client.request('chat', { model: 'no-such-model', ...user('hi') }));
    assert.is(error.code, 'not_found');
    assert.match(error.message, /no-such-model/);
    assert.is((error.details as { upstream_status: number }).upstream_status, 404);
  });
  await withStack(
    { apiKey: 'right' },
    async ({ client, upstream }) => {
      const error = await appError(client.request('chat', { model: 'llama3.2:3b', ...user('hi') }));
      assert.is(error.code, 'backend_unavailable');
      assert.match(error.message, /Incorrect API key.*TABAGENT_UPSTREAM_API_KEY/);
      assert.is(lastBody(upstream, '/v1/chat/completions') !== undefined, true);
    },
    { upstreamApiKey: 'wrong' },
  );
  await withStack(
    { apiKey: 'right' },
    async ({ client, upstream }) => {
      assert.is((await client.request('chat', { model: 'llama3.2:3b', ...user('ok') })).response, 'echo: ok');
      assert.is(upstream.requests.at(-1)?.headers.authorization, 'Bearer right');
    },
    { upstreamApiKey: 'right' },
  );
});

errors('5xx, errors mid-stream, malformed streams and dropped connections are upstream_error', () =>
  withStack({}, async ({ client }) => {
    assert.is((await appError(client.request('chat', { model: 'llama3.2:3b', ...user('[http-500]') }))).code, 'upstream_error');

    const deltas: string[] = [];
    const midStream = client.stream('chat', { model: 'llama3.2:3b', ...user('[error-mid-stream] a b c') });
    const error = await (async () => {
      try {
        for await (const chunk of midStream) deltas.push(chunk.delta);
      } catch (e) {
        return e as AppError;
      }
    })();
    assert.ok(deltas.length >= 1, 'the chunks before the error arrived');
    assert.is(error?.code, 'upstream_error');
    assert.match(error!.message, /upstream exploded/);

    const malformed = await appError(client.stream('chat', { model: 'llama3.2:3b', ...user('[malformed] a b') }).result);
    assert.is(malformed.code, 'upstream_error');
    assert.match(malformed.message, /malformed/);

    assert.is((await appError(client.stream('chat', { model: 'llama3.2:3b', ...user('[drop] a b') }).result)).code, 'upstream_error');
    assert.is((await client.request('health')).status, 'ok', 'the server keeps serving');
  }),
);

errors('a URL ending in /v1 works as the root', async () => {
  const upstream = await startUpstream();
  const server = await startServer({ upstreamUrl: `${upstream.url}/v1` });
  try {
    const client = await server.client();
    assert.is((await client.request('chat', { model: 'llama3.2:3b', ...user('v1 root') })).response, 'echo: v1 root');
  } finally {
    await server.close();
    await upstream.close();
  }
});

errors.run();

const defaults = suite('defaults');

defaults('request params beat the model\'s saved settings, which beat the server params', () =>
  withStack({}, async ({ client, upstream }) => {
    await client.request('set_params', { params: { temperature: 0.9, top_p: 0.5, system_prompt: 'You are terse.' } });
    await client.request('save_inference_settings', { repo_id: 'llama3.2', variant: '3b', settings: { temperature: 0.2, max_tokens: 64 } });
    const saved = await client.request('get_inference_settings', { repo_id: 'llama3.2', variant: '3b' });
    assert.equal(saved.settings, { temperature: 0.2, max_tokens: 64 });

    await client.request('chat', { model: 'llama3.2:3b', ...user('x') });
    let sent = lastBody(upstream, '/v1/chat/completions');
    assert.is(sent.temperature, 0.2);
    assert.is(sent.max_tokens, 64);
    assert.is(sent.top_p, 0.5);
    assert.equal((sent.messages as unknown[])[0], { role: 'system', content: 'You are terse.' });

    await client.request('chat', { model: 'llama3.2:3b', temperature: 0.7, ...user('x') });
    sent = lastBody(upstream, '/v1/chat/completions');
    assert.is(sent.temperature, 0.7);
  }),
);

defaults('select_model sets the model for requests that name none, and persists it', () =>
  withStack({}, async ({ client, upstream }) => {
    const missing = await appError(client.request('chat', user('x')));
    assert.is(missing.code, 'invalid_request');
    const selected = await client.request('select_model', { model_id: 'qwen2.5:7b-instruct-q4_K_M' });
    assert.equal(selected, { type: 'model_selected', model_id: 'qwen2.5:7b-instruct-q4_K_M', previous: null });
    await client.request('chat', user('x'));
    assert.is(lastBody(upstream, '/v1/chat/completions').model, 'qwen2.5:7b-instruct-q4_K_M');
    assert.is((await appError(client.request('select_model', { model_id: 'nope' }))).code, 'not_found');
  }),
);

defaults.run();

const similarity = suite('embeddings and rerank');

similarity('embeddings for one text and for a batch, in input order', () =>
  withStack({}, async ({ client }) => {
    const one = await client.request('embeddings', { model: 'nomic-embed-text', input: 'alpha beta' });
    assert.is(one.embeddings.length, 1);
    assert.is(one.embeddings[0].length, 32);
    const batch = await client.request('embeddings', { model: 'nomic-embed-text', input: ['alpha', 'beta', 'alpha'] });
    assert.is(batch.embeddings.length, 3);
    assert.equal(batch.embeddings[0], batch.embeddings[2]);
    assert.not.equal(batch.embeddings[0], batch.embeddings[1]);
  }),
);

similarity('rerank uses the upstream rerank endpoint where there is one', () =>
  withStack({ rerank: true }, async ({ client }) => {
    const answer = await client.request('rerank', {
      model: 'nomic-embed-text',
      query: 'red apple',
      documents: ['blue sky', 'red apple pie', 'green apple'],
      top_n: 2,
    });
    assert.is(answer.method, 'rerank_endpoint');
    assert.is(answer.results.length, 2);
    assert.is(answer.results[0].document, 'red apple pie');
  }),
);

similarity('rerank falls back to scoring with embeddings, and says so', () =>
  withStack({}, async ({ client }) => {
    const answer = await client.request('rerank', {
      model: 'nomic-embed-text',
      query: 'red apple',
      documents: ['blue sky today', 'red apple pie', 'green apple'],
    });
    assert.is(answer.method, 'embeddings');
    assert.is(answer.results.length, 3);
    assert.is(answer.results.at(-1)?.document, 'blue sky today', 'the document sharing no word ranks last');
    const scores = answer.results.map((r) => r.score);
    assert.equal(scores, [...scores].sort((a, b) => b - a));
  }),
);

similarity.run();

const ollama = suite('model management (Ollama upstream)');

ollama('list_models shows Ollama\'s details and loaded state, filtered', () =>
  withStack({ ollama: true }, async ({ client }) => {
    await client.request('load_model', { model_id: 'llama3.2:3b' });
    const all = await client.request('list_models');
    const llama = all.models.find((m) => m.id === 'llama3.2:3b');
    assert.ok(llama?.loaded);
    assert.is(llama?.quantization, 'Q4_K_M');
    assert.ok((llama?.size_bytes ?? 0) > 0);
    const filtered = await client.request('list_models', { filter: 'QWEN' });
    assert.equal(filtered.models.map((m) => m.id), ['qwen2.5:7b-instruct-q4_K_M']);
  }),
);

ollama('load_model pushes progress events to the requesting channel, then unload_model frees it', () =>
  withStack({ ollama: true }, async ({ client, upstream }) => {
    const statuses: string[] = [];
    client.on('model_loading_progress', (data) => statuses.push(data.status));
    const loaded = await client.request('load_model', { model_id: 'qwen2.5', variant: '7b-instruct-q4_K_M' });
    assert.is(loaded.model_id, 'qwen2.5:7b-instruct-q4_K_M');
    assert.equal(statuses, ['loading', 'loaded']);
    assert.ok(upstream.loaded.has('qwen2.5:7b-instruct-q4_K_M'));
    assert.ok((await client.request('get_loaded_models')).models.some((m) => m.id === 'qwen2.5:7b-instruct-q4_K_M'));
    await client.request('unload_model', { model_id: 'qwen2.5:7b-instruct-q4_K_M' });
    assert.not.ok(upstream.loaded.has('qwen2.5:7b-instruct-q4_K_M'));
  }),
);

ollama('pull_model streams Ollama\'s progress as events and ends in success; a missing model is not_found', () =>
  withStack({ ollama: true }, async ({ client }) => {
    const progress: { status: string; completed_bytes?: number }[] = [];
    client.on('model_pull_progress', (data) => progress.push(data));
    const pulled = await client.request('pull_model', { model: 'phi3', quantization: 'mini' });
    assert.equal(pulled, { type: 'model_pulled', model: 'phi3:mini', status: 'success' });
    assert.is(progress[0].status, 'pulling manifest');
    assert.ok(progress.some((p) => (p.completed_bytes ?? 0) > 0), 'byte counts came through');
    assert.is(progress.at(-1)?.status, 'success');
    assert.ok((await client.request('list_models', { filter: 'phi3' })).models.length === 1);
    assert.is((await appError(client.request('pull_model', { model: 'missing-model' }))).code, 'not_found');
  }),
);

ollama('model_info, embedding models, quants, and delete_model', () =>
  withStack({ ollama: true }, async ({ client }) => {
    const info = await client.request('model_info', { model_id: 'llama3.2:3b' });
    assert.ok(info.model.capabilities?.includes('completion'));
    assert.ok(typeof info.details?.model_info === 'object');
    const embedding = await client.request('get_embedding_models');
    assert.equal(embedding.models.map((m) => m.id), ['tabagent-hashed-512', 'nomic-embed-text:latest']);
    const quants = await client.request('get_model_quants', { repo_id: 'qwen2.5' });
    assert.equal(quants.quants.map((q) => q.variant), ['7b-instruct-q4_K_M']);
    await client.request('delete_model', { model_id: 'llama3.2:3b' });
    assert.not.ok((await client.request('list_models')).models.some((m) => m.id === 'llama3.2:3b'));
    assert.is((await appError(client.request('delete_model', { model_id: 'llama3.2:3b' }))).code, 'not_found');
  }),
);

ollama.run();

const openai = suite('model management (OpenAI-compatible upstream)');

openai('lists served models; load_model confirms a served one; Ollama-only operations are not_supported', () =>
  withStack({}, async ({ client }) => {
    const { models } = await client.request('list_models');
    assert.ok(models.some((m) => m.id === 'llama3.2:3b'));
    assert.is((await client.request('load_model', { model_id: 'llama3.2:3b' })).loaded, true);
    assert.is((await appError(client.request('load_model', { model_id: 'nope' }))).code, 'not_found');
    // One at a time: a call whose rejection arrives before anything awaits it would be an unhandled rejection.
    for (const call of [
      () => client.request('unload_model', { model_id: 'llama3.2:3b' }),
      () => client.request('pull_model', { model: 'x' }),
      () => client.request('delete_model', { model_id: 'llama3.2:3b' }),
    ]) {
      assert.is((await appError(call())).code, 'not_supported');
    }
    assert.ok((await client.request('get_embedding_models')).models.some((m) => m.id === 'nomic-embed-text'));
  }),
);

openai.run();

const estimates = suite('memory estimates');

estimates('estimate_memory reads the model\'s facts from Ollama and explains its reasoning', () =>
  withStack({ ollama: true }, async ({ client }) => {
    const estimate = await client.request('estimate_memory', { model: 'llama3.2:3b' });
    assert.is(estimate.quantization, 'Q4_K_M');
    assert.ok(estimate.estimated_bytes > 1e9 && estimate.estimated_bytes < 1e10);
    assert.ok(estimate.reasoning.length > 20);
    const compat = await client.request('check_compatibility', { model: 'llama3.2:3b', quantization: 'Q8_0' });
    assert.is(compat.quantization, 'Q8_0');
    assert.ok(compat.estimated_bytes > estimate.estimated_bytes, 'a bigger quantization needs more');
    assert.ok(['cpu', 'gpu'].includes(compat.device));
    assert.ok(compat.available_bytes > 0);
  }),
);

estimates('without an upstream, estimates of models it lacks come from the name; get_recipes needs no upstream either', async () => {
  const server = await startServer();
  try {
    const client = await server.client();
    const estimate = await client.request('estimate_memory', { model: 'llama3.1:70b', quantization: 'Q4_K_M' });
    assert.ok(estimate.estimated_bytes > 35e9);
    const compat = await client.request('check_compatibility', { model: 'llama3.1:405b', quantization: 'F16' });
    assert.is(compat.compatible, false);
    const { recipes } = await client.request('get_recipes');
    assert.ok(recipes.length >= 5);
    // The embedded engine serves now; a model it does not have says where models go.
    const missing = await appError(client.request('chat', { model: 'm', ...user('x') }));
    assert.is(missing.code, 'not_found');
    assert.match(missing.message, /models directory.*TABAGENT_MODELS_DIR.*pull_model.*TABAGENT_UPSTREAM_URL/);
  } finally {
    await server.close();
  }
});

estimates.run();
