/**
 * The embedded engine's models on a real GGUF file: listing and facts from its header, loading with the loader's
 * progress, unloading, keep-alive and TTL expiry, eviction of the least recently used, embeddings, deletion.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appError } from './fixtures/errors.ts';
import { ask, MODEL, modelsCopy, startModelServer } from './fixtures/models.ts';
import type { TestServer } from './fixtures/server.ts';

const models = suite('embedded models');

models('list_models, model_info, get_model_quants and estimates come from the GGUF header and the file', async () => {
  const server = await startModelServer();
  try {
    const client = await server.client();
    const { models: listed } = await client.request('list_models');
    assert.equal(listed, [
      {
        id: MODEL,
        name: 'llama',
        size_bytes: 1_185_376,
        parameter_count: '293K',
        quantization: 'F32',
        family: 'llama',
        capabilities: ['completion', 'embedding'],
        context_length: 2048,
        loaded: false,
      },
    ]);
    const info = await client.request('model_info', { model_id: MODEL });
    assert.equal(
      { ...info.details, path: undefined },
      { path: undefined, architecture: 'llama', parameter_count: 292_800, quantization: 'F32', trained_context_length: 2048, context_length: 2048, embedding_length: 64, block_count: 5, head_count: 8, head_count_kv: 4, chat_template: false },
    );
    assert.equal((await client.request('get_model_quants', { repo_id: MODEL })).quants, [{ variant: 'F32', size_bytes: 1_185_376, downloaded: true }]);
    const estimate = await client.request('estimate_memory', { model: MODEL });
    assert.is(estimate.quantization, 'F32');
    assert.match(estimate.reasoning, /5 layers × 64 dims × 4\/8 KV heads/, 'the KV cache from the real shape');
    assert.ok(estimate.estimated_bytes > 1_185_376 && estimate.estimated_bytes < 4e6);
    assert.is((await client.request('check_compatibility', { model: MODEL })).compatible, true);
    assert.is((await appError(client.request('model_info', { model_id: '../secrets' }))).code, 'invalid_request');
    assert.is((await appError(client.request('model_info', { model_id: 'absent' }))).code, 'not_found');
  } finally {
    await server.close();
  }
});

models('load_model pushes the loader\'s own progress, then loaded; unload_model frees it', async () => {
  const server = await startModelServer();
  try {
    const client = await server.client();
    const progress: { model_id: string; progress: number; status: string }[] = [];
    client.on('model_loading_progress', (data) => progress.push(data));
    const loaded = await client.request('load_model', { model_id: MODEL });
    assert.is(loaded.loaded, true);
    assert.is(loaded.context_length, 2048);
    assert.equal(progress[0], { model_id: MODEL, progress: 0, status: 'loading' });
    assert.equal(progress.at(-1), { model_id: MODEL, progress: 1, status: 'loaded' });
    const between = progress.slice(1, -1).map((p) => p.progress);
    assert.ok(between.length >= 3 && between.every((p) => p > 0 && p < 1), `fractions from llama.cpp's loader: ${between.join(', ')}`);
    assert.equal(between, [...between].sort((a, b) => a - b), 'rising');
    assert.equal((await client.request('get_loaded_models')).models.map((m) => m.id), [MODEL]);
    await client.request('unload_model', { model_id: MODEL });
    assert.equal((await client.request('get_loaded_models')).models, []);
  } finally {
    await server.close();
  }
});

models('an idle model unloads after TABAGENT_MODEL_TTL_S, and after a request\'s keep_alive', async () => {
  const server = await startModelServer({ modelTtlS: 0.2 });
  try {
    const client = await server.client();
    await client.request('chat', { ...ask('Hi'), max_tokens: 4 });
    assert.equal((await client.request('get_loaded_models')).models.map((m) => m.id), [MODEL], 'loaded by the chat');
    await pollUntilUnloaded(client);
    await client.request('load_model', { model_id: MODEL, keep_alive: -1 });
    await sleep(400);
    assert.equal((await client.request('get_loaded_models')).models.map((m) => m.id), [MODEL], 'keep_alive -1 keeps it');
    await client.request('chat', { ...ask('Hi'), max_tokens: 2, keep_alive: '150ms' });
    await pollUntilUnloaded(client);
    await client.request('embeddings', { model: MODEL, input: 'x', keep_alive: 0 });
    await pollUntilUnloaded(client);
  } finally {
    await server.close();
  }
});

models('a model that does not fit evicts the least recently used one', async () => {
  const dir = await modelsCopy(['a', 'b', 'c']);
  // Each copy needs about 2.7 MB with its 2,048-token context: two fit in 6 MB, three do not.
  const server = await startModelServer({ modelsDir: dir, modelMemoryBytes: 6_000_000 });
  try {
    const client = await server.client();
    const evicted: string[] = [];
    client.on('model_loading_progress', (data) => {
      if (data.status === 'evicted') evicted.push(data.model_id);
    });
    await client.request('load_model', { model_id: 'a' });
    await client.request('load_model', { model_id: 'b' });
    await client.request('chat', { model: 'a', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }); // a is now the more recent
    await client.request('load_model', { model_id: 'c' });
    assert.equal(evicted, ['b']);
    assert.equal((await client.request('get_loaded_models')).models.map((m) => m.id).sort(), ['a', 'c']);
  } finally {
    await server.close();
  }
});

models('embeddings are the model\'s own vectors, in input order; rerank scores with them; delete_model removes the file', async () => {
  const dir = await modelsCopy();
  const server = await startModelServer({ modelsDir: dir });
  try {
    const client = await server.client();
    const one = await client.request('embeddings', { model: MODEL, input: 'The cat sat on the mat' });
    assert.is(one.embeddings[0].length, 64);
    assert.ok((one.usage?.prompt_tokens ?? 0) > 3);
    const batch = await client.request('embeddings', { model: MODEL, input: ['The cat sat on the mat', 'A dog ran', 'The cat sat on the mat'] });
    assert.equal(batch.embeddings[0], batch.embeddings[2]);
    assert.equal(batch.embeddings[0], one.embeddings[0]);
    assert.not.equal(batch.embeddings[0], batch.embeddings[1]);
    const ranked = await client.request('rerank', { model: MODEL, query: 'The cat sat on the mat', documents: ['A dog ran', 'The cat sat on the mat'] });
    assert.is(ranked.method, 'embeddings');
    assert.is(ranked.results[0].index, 1, 'the same text ranks first');
    const { models: embedding } = await client.request('get_embedding_models');
    assert.equal(embedding.map((m) => m.id), ['tabagent-hashed-512', MODEL]);
    await client.request('delete_model', { model_id: MODEL });
    assert.not.ok(existsSync(path.join(dir, `${MODEL}.gguf`)));
    assert.equal((await client.request('list_models')).models, []);
    assert.is((await appError(client.request('delete_model', { model_id: MODEL }))).code, 'not_found');
  } finally {
    await server.close();
  }
});

/** Polls get_loaded_models until it is empty: expiry is the server's timer, not the test's. */
async function pollUntilUnloaded(client: Awaited<ReturnType<TestServer['client']>>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await client.request('get_loaded_models')).models.length > 0) {
    if (Date.now() > deadline) throw new Error('the model never unloaded');
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

models.run();
