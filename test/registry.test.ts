import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { Caller } from '../src/dispatch.ts';
import { ANONYMOUS_IDENTITY } from '../src/security/auth.ts';
import { renderRequestTypes } from '../src/docs.ts';
import { decodeFrame } from '../src/protocol/frames.ts';
import { actionFromPascalCase, actions, registry, type Action } from '../src/protocol/registry.ts';
import { setLogLevel } from '../src/log.ts';

setLogLevel('warn');

/** TabAgent's request types, as its API names them: the compatibility this project promises, not a list of ours. */
const TABAGENT_TYPES = [
  'chat', 'responses', 'generate', 'embeddings', 'rerank',
  'list_models', 'model_info', 'load_model', 'unload_model', 'get_loaded_models', 'select_model', 'pull_model',
  'delete_model', 'get_embedding_models', 'get_recipes',
  'get_model_quants', 'get_inference_settings', 'save_inference_settings',
  'chat_history', 'save_message',
  'rag_query', 'semantic_search_query', 'calculate_similarity', 'evaluate_embeddings', 'cluster_documents',
  'recommend_content',
  'stop_generation', 'halt_status',
  'get_params', 'set_params',
  'health', 'system_info', 'get_stats', 'get_resources', 'estimate_memory', 'check_compatibility',
];

const declaration = suite('registry');

declaration('declares all 36 TabAgent request types (ours beyond them need no list here)', () => {
  assert.is(new Set(TABAGENT_TYPES).size, 36);
  for (const name of TABAGENT_TYPES) assert.ok(name in registry, `missing ${name}`);
});

declaration('every type maps from its seed PascalCase name', () => {
  assert.is(actionFromPascalCase('Chat'), 'chat');
  assert.is(actionFromPascalCase('SemanticSearchQuery'), 'semantic_search_query');
  for (const action of actions) {
    const pascal = action.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('');
    assert.is(actionFromPascalCase(pascal), action);
  }
});

declaration('docs/REQUEST_TYPES.md is generated from the registry and up to date (npm run docs)', () => {
  const onDisk = readFileSync(new URL('../docs/REQUEST_TYPES.md', import.meta.url), 'utf8');
  assert.ok(onDisk === renderRequestTypes(), 'docs/REQUEST_TYPES.md is stale: run `npm run docs`');
  for (const action of actions) assert.ok(onDisk.includes(`### \`${action}\``), `${action} is documented`);
});

declaration('decoding rejects unknown actions and names the offending field', () => {
  const assign = () => 'srv-1';
  const unknown = decodeFrame('{"action":"chatt","request_id":"r"}', assign);
  assert.ok(!unknown.ok && unknown.error.code === 'unknown_action' && unknown.requestId === 'r');
  const wrong = decodeFrame('{"action":"chat","messages":[{"role":"user","content":5}]}', assign);
  assert.ok(!wrong.ok && wrong.error.code === 'invalid_request');
  assert.is((wrong as { error: { details: { field: string } } }).error.details.field, 'messages.0.content');
});

declaration.run();

const answers = suite('system answers');
const dataDir = mkdtempSync(path.join(tmpdir(), 'tabagent-registry-'));
const app = createApp(loadConfig({}, { port: 0, upstreamUrl: 'off', dataDir }));
const caller = new Caller('test', ANONYMOUS_IDENTITY);

async function answer(action: Action, params: unknown = {}) {
  const decoded = registry[action].input.safeParse(params);
  assert.ok(decoded.success, `params for ${action}`);
  const { frame } = await app.dispatcher.execute(caller, { requestId: `${action}-1`, action, params: decoded.data });
  return frame as Record<string, unknown>;
}

answers('what the server answers itself matches each type\'s declared output schema', async () => {
  const cases: [Action, unknown][] = [
    ['health', {}],
    ['system_info', {}],
    ['get_stats', {}],
    ['get_resources', {}],
    ['set_params', { params: { temperature: 0.2, stop: ['\n\n'] } }],
    ['get_params', {}],
    ['halt_status', {}],
    ['stop_generation', {}],
    ['echo', { data: { nested: [1, 'two'] } }],
  ];
  for (const [action, params] of cases) {
    const { request_id, type, ...fields } = await answer(action, params);
    assert.is(request_id, `${action}-1`);
    assert.is(type, registry[action].response, `${action} is tagged ${registry[action].response}`);
    const checked = registry[action].output.safeParse(fields);
    assert.ok(checked.success, `${action}: ${checked.success ? '' : checked.error.message}`);
  }
});

answers('set_params merges, replace replaces, and every session sees the same params', async () => {
  await answer('set_params', { params: { temperature: 0.7, max_tokens: 100 }, replace: true });
  await answer('set_params', { params: { top_p: 0.9 } });
  assert.equal((await answer('get_params')).params, { temperature: 0.7, max_tokens: 100, top_p: 0.9 });
  const other = new Caller('other', ANONYMOUS_IDENTITY);
  const { frame } = await app.dispatcher.execute(other, { requestId: 'x', action: 'get_params', params: {} });
  assert.equal((frame as { params: unknown }).params, { temperature: 0.7, max_tokens: 100, top_p: 0.9 });
  await answer('set_params', { params: { seed: 1 }, replace: true });
  assert.equal((await answer('get_params')).params, { seed: 1 });
});

answers('types whose engine is not attached answer backend_unavailable, naming what serves them', async () => {
  for (const action of actions.filter((a) => registry[a].engine === 'knowledge')) {
    const frame = await app.dispatcher.execute(caller, { requestId: 'u', action, params: {} }).then((a) => a.frame);
    assert.is(frame.type, 'error');
    assert.is((frame as { code: string }).code, 'backend_unavailable', action);
    assert.match(String((frame as { message: string }).message), /engine/);
  }
});

answers('without an upstream or a model, chat says how to get one: the models directory, pull_model, or an upstream', async () => {
  const frame = (await answer('chat', { messages: [{ role: 'user', content: 'hi' }] })) as { type: string; code: string; message: string };
  assert.is(frame.type, 'error');
  assert.is(frame.code, 'invalid_request');
  assert.match(frame.message, /no models/);
  assert.match(frame.message, /TABAGENT_MODELS_DIR/);
  assert.match(frame.message, /pull_model/);
  assert.match(frame.message, /TABAGENT_UPSTREAM_URL/);
});

answers.after(async () => {
  await app.close(0);
  rmSync(dataDir, { recursive: true, force: true });
});
answers.run();
