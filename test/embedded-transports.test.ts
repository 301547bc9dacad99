/**
 * The embedded engine on the real model through every transport the server has besides the data channel (which
 * embedded-chat and embedded-models drive): a WebSocket, tRPC, a native messaging host; and the knowledge engine
 * embedding documents with the model.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppRouter } from '../routers/index.ts';
import { spawnNativeHost, type Frame } from '../src/transports/native/client.ts';
import { openStore } from '../src/store/index.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { ask, MODEL, startModelServer } from './fixtures/models.ts';
import type { TestServer } from './fixtures/server.ts';

let server: TestServer;
const transports = suite('embedded engine over each transport');
transports.before(async () => {
  server = await startModelServer();
});
transports.after(() => server.close());

transports('WebSocket: load_model and a forced reload with progress events, then a streamed chat, chunk by chunk', async () => {
  const socket = await WebSocketClient.connect(`${server.url.replace('http', 'ws')}/v1/ws`);
  try {
    await socket.request({ action: 'load_model', request_id: 'first', model_id: MODEL });
    const events: Frame[] = [];
    const { frame: loaded } = await socket.request({ action: 'load_model', request_id: 'l', model_id: MODEL, force_reload: true }, { onFrame: (f) => events.push(f) });
    assert.is(loaded.type, 'model_loaded');
    const statuses = events.map((e) => (e.data as { status: string }).status);
    assert.is(statuses[0], 'unloading', 'force_reload unloads it first');
    assert.is(statuses.at(-1), 'loaded');
    const chunks: string[] = [];
    const { frame } = await socket.request({ action: 'chat', request_id: 'c', ...ask('Once upon a time'), stream: true, max_tokens: 20 }, { onFrame: (f) => chunks.push(f.delta as string) });
    assert.is(frame.type, 'chat_response');
    assert.ok(chunks.length >= 2, 'streamed, not one answer');
    assert.is(chunks.join(''), frame.response);
    assert.is((frame.usage as { completion_tokens: number }).completion_tokens, 20);
  } finally {
    socket.close();
  }
});

transports('tRPC: rpc.chat with a JSON schema, rpc.embeddings and rpc.model_info', async () => {
  const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${server.url}/trpc`, transformer: superjson })] });
  const schema = { type: 'object', properties: { answer: { enum: ['yes', 'no'] } }, required: ['answer'] };
  const answer = await trpc.rpc.chat.mutate({ ...ask('Is the ball red?'), response_format: { type: 'json_schema', json_schema: { name: 'yes_no', schema } } });
  assert.ok(['yes', 'no'].includes((JSON.parse(answer.response) as { answer: string }).answer), answer.response);
  const { embeddings } = await trpc.rpc.embeddings.mutate({ model: MODEL, input: ['a', 'b'] });
  assert.equal(embeddings.map((v) => v.length), [64, 64]);
  assert.is((await trpc.rpc.model_info.query({ model_id: MODEL })).model.context_length, 2048);
});

transports('native messaging: a host relays a streamed chat and its answer, as Chrome would see them', async () => {
  const host = await spawnNativeHost({ env: { TABAGENT_DATA_DIR: server.dataDir } });
  try {
    const chunks: string[] = [];
    const answer = await host.stream({ action: 'chat', request_id: 'n', ...ask('Once upon a time'), stream: true, max_tokens: 16 }, (f) => {
      if (f.type === 'chunk') chunks.push(f.delta as string);
    });
    assert.is(answer.type, 'chat_response');
    assert.is(chunks.join(''), answer.response);
    assert.equal(host.violations, []);
  } finally {
    host.kill('SIGKILL');
  }
});

transports('the knowledge engine embeds and searches documents with the model (TABAGENT_EMBEDDING_MODEL)', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-embedded-store-'));
  const store = await openStore({ dataDir });
  const served = await startModelServer({ embeddingModel: MODEL }, { store });
  try {
    const client = await served.client();
    const added = await client.request('add_documents', { documents: [{ id: 'ball', content: 'Lily found a big red ball in the park.' }, { id: 'cake', content: 'Mom baked a chocolate cake for Tim.' }] });
    assert.is(added.embedding_model, MODEL);
    const found = await client.request('rag_query', { query: 'red ball in the park', top_k: 2 });
    assert.is(found.embedding_model, MODEL);
    assert.is(found.results[0].id, 'ball');
    const similar = await client.request('calculate_similarity', { text1: 'a red ball', text2: 'a red ball' });
    assert.ok(Math.abs(similar.similarity - 1) < 1e-6);
  } finally {
    await served.close();
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

transports.run();
