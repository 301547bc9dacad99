/**
 * Stored data belongs to the API key that wrote it: history, documents, searches, the default model and inference
 * settings, over tRPC and the data channel, on a live server with the real store (embedded SQLite) and an upstream
 * test double (no real model server runs here). Changing what every caller shares takes an admin key.
 */
import { TRPCClientError } from '@trpc/client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSignalingClient, type SignalingClient } from '../src/client/signaling.ts';
import { openStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { embeddedBackend } from './fixtures/store.ts';
import { startServer, type TestServer } from './fixtures/server.ts';
import { startUpstream, type Upstream } from './fixtures/upstream.ts';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';
const ADMIN = 'key-admin-0123456789abcdef';

const test = suite('stored data belongs to a key');
const backend = embeddedBackend();
let store: Store;
let upstream: Upstream;
let server: TestServer;
const as = (key: string): SignalingClient => createSignalingClient({ url: server.url, headers: () => ({ authorization: `Bearer ${key}` }) });

async function refused(promise: Promise<unknown>): Promise<{ appCode?: string; httpStatus?: number; message: string }> {
  const error = await promise.then(
    () => assert.unreachable('expected a refusal'),
    (thrown: unknown) => thrown,
  );
  assert.instance(error, TRPCClientError);
  const { data, message } = error as TRPCClientError<never>;
  return { ...(data as unknown as { appCode?: string; httpStatus?: number }), message };
}

test.before(async () => {
  store = await openStore(backend.options());
  upstream = await startUpstream({ ollama: true });
  server = await startServer({ apiKeys: [KEY_A, KEY_B], adminKeys: [ADMIN], upstreamUrl: upstream.url }, { store });
});
test.after(async () => {
  await server?.close();
  await store?.close();
  await upstream?.close();
  await backend.cleanup();
});

test('history: each key reads only the messages it saved, per session and across them', async () => {
  await as(KEY_A).rpc.save_message.mutate({ session_id: 'chat', message: { role: 'user', content: 'secret of A' } });
  await as(KEY_B).rpc.save_message.mutate({ session_id: 'chat', message: { role: 'user', content: 'note of B' } });
  const contents = async (key: string, input: { session_id?: string }) =>
    (await as(key).rpc.chat_history.query(input)).messages.map((m) => m.content);
  assert.equal(await contents(KEY_A, { session_id: 'chat' }), ['secret of A']);
  assert.equal(await contents(KEY_B, { session_id: 'chat' }), ['note of B']);
  assert.equal(await contents(KEY_B, {}), ['note of B'], 'all sessions of B: still none of A');
  assert.equal(await contents(ADMIN, {}), [], 'an admin key has data of its own, not everyone\'s');
});

test('documents: another key cannot list, search, overwrite or delete them, even by the same id', async () => {
  const a = as(KEY_A);
  const b = as(KEY_B);
  await a.rpc.add_documents.mutate({ documents: [{ id: 'plan', content: 'The launch moves to Thursday at dawn.', metadata: { team: 'red' } }] });
  await b.rpc.add_documents.mutate({ documents: [{ id: 'plan', content: 'Groceries: oats, lemons and coffee.' }] });

  // Saved messages are documents too (source `message`): each key sees its own message and nothing of the other's.
  const listed = async (client: SignalingClient) => (await client.rpc.list_documents.query({})).documents.map((d) => d.content);
  assert.equal(await listed(a), ['The launch moves to Thursday at dawn.', 'secret of A']);
  assert.equal(await listed(b), ['Groceries: oats, lemons and coffee.', 'note of B']);
  const searched = (await b.rpc.rag_query.query({ query: 'when is the launch', top_k: 5 })).results;
  assert.not.ok(searched.some((hit) => hit.content.includes('launch')), 'B\'s search never finds A\'s text');
  const semantic = (await b.rpc.semantic_search_query.query({ query: 'launch Thursday dawn', k: 5 })).results;
  assert.not.ok(semantic.some((hit) => hit.content.includes('launch')));
  const filter = await refused(b.rpc.rag_query.query({ query: 'launch', filters: { team: 'red' } }));
  assert.is(filter.appCode, 'invalid_request', 'A\'s metadata keys are unknown to B');
  assert.not.match(filter.message.split('known:')[1] ?? '', /team/, 'the keys it lists are B\'s');
  assert.is((await a.rpc.rag_query.query({ query: 'when is the launch', top_k: 1 })).results[0].id, 'plan');

  assert.is((await b.rpc.delete_documents.mutate({ ids: ['plan'] })).deleted, 1, 'B deletes its own "plan"');
  assert.is((await b.rpc.delete_documents.mutate({ ids: ['plan'] })).deleted, 0);
  assert.equal((await a.rpc.list_documents.query({ source: 'document' })).documents.map((d) => d.id), ['plan'], 'A\'s "plan" is still there');
  assert.is((await a.rpc.rag_query.query({ query: 'launch Thursday', top_k: 1 })).results[0].id, 'plan');
});

test('the data channel acts as the key its session was opened with', async () => {
  const client = await server.client({ headers: () => ({ authorization: `Bearer ${KEY_B}` }) });
  assert.equal((await client.request('chat_history', {})).messages.map((m) => m.content), ['note of B']);
  await client.request('save_message', { session_id: 'dc', message: { role: 'user', content: 'sent on the channel' } });
  assert.equal((await as(KEY_A).rpc.chat_history.query({ session_id: 'dc' })).messages, []);
  assert.equal((await as(KEY_B).rpc.chat_history.query({ session_id: 'dc' })).messages.map((m) => m.content), ['sent on the channel']);
  await client.close();
});

test('the default model and inference settings are per key', async () => {
  await as(KEY_A).rpc.select_model.mutate({ model_id: 'llama3.2:3b' });
  await as(KEY_B).rpc.select_model.mutate({ model_id: 'qwen2.5:7b-instruct-q4_K_M' });
  const modelUsed = async (key: string) => {
    const before = upstream.requests.length;
    await as(key).rpc.chat.mutate({ messages: [{ role: 'user', content: 'hi' }] });
    const sent = upstream.requests.slice(before).find((r) => r.path === '/v1/chat/completions');
    return (sent?.body as { model?: string; temperature?: number } | undefined) ?? {};
  };
  assert.is((await modelUsed(KEY_A)).model, 'llama3.2:3b');
  assert.is((await modelUsed(KEY_B)).model, 'qwen2.5:7b-instruct-q4_K_M');

  await as(KEY_A).rpc.save_inference_settings.mutate({ repo_id: 'llama3.2', variant: '3b', settings: { temperature: 0.11 } });
  assert.equal((await as(KEY_B).rpc.get_inference_settings.query({ repo_id: 'llama3.2', variant: '3b' })).settings, {});
  assert.equal((await as(KEY_A).rpc.get_inference_settings.query({ repo_id: 'llama3.2', variant: '3b' })).settings, { temperature: 0.11 });
  assert.is((await modelUsed(KEY_A)).temperature, 0.11, 'A\'s saved settings apply to A\'s requests');
  await as(KEY_B).rpc.select_model.mutate({ model_id: 'llama3.2:3b' });
  assert.is((await modelUsed(KEY_B)).temperature, undefined, '...and not to B\'s, on the same model');
});

test('only an admin key changes what every caller shares: server params and models', async () => {
  const b = as(KEY_B);
  const attempts: [string, () => Promise<unknown>][] = [
    ['set_params', () => b.rpc.set_params.mutate({ params: { temperature: 1.9 } })],
    ['load_model', () => b.rpc.load_model.mutate({ model_id: 'llama3.2:3b' })],
    ['unload_model', () => b.rpc.unload_model.mutate({ model_id: 'llama3.2:3b' })],
    ['pull_model', () => b.rpc.pull_model.mutate({ model: 'tinyllama' })],
    ['delete_model', () => b.rpc.delete_model.mutate({ model_id: 'llama3.2:3b' })],
  ];
  const upstreamCalls = upstream.requests.length;
  for (const [action, attempt] of attempts) {
    const error = await refused(attempt());
    assert.equal([error.appCode, error.httpStatus], ['forbidden', 403], action);
    assert.match(error.message, /TABAGENT_ADMIN_KEYS/, `${action} names the setting`);
  }
  assert.is(upstream.requests.length, upstreamCalls, 'nothing reached the upstream');
  assert.equal((await b.rpc.get_params.query({})).params, {}, 'the params are unchanged');

  const client = await server.client({ headers: () => ({ authorization: `Bearer ${KEY_A}` }) });
  const onChannel = await client.request('set_params', { params: { temperature: 1.9 } }).catch((error: { code?: string }) => error.code);
  assert.is(onChannel, 'forbidden', 'the data channel enforces it too');
  await client.close();

  assert.equal((await as(ADMIN).rpc.set_params.mutate({ params: { temperature: 0.3 } })).params, { temperature: 0.3 });
  assert.equal((await b.rpc.get_params.query({})).params, { temperature: 0.3 }, 'every key reads the shared params');
  assert.is((await as(ADMIN).rpc.load_model.mutate({ model_id: 'llama3.2:3b' })).loaded, true);
});

test.run();
