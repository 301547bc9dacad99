/**
 * Which backend serves inference (src/engine/inference/select.ts), and the embedded engine where node-llama-cpp
 * cannot load: it says so, and says how to use an upstream instead.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CallContext } from '../src/protocol/handlers.ts';
import { EmbeddedEngine } from '../src/engine/inference/embedded/index.ts';
import { chooseBackend } from '../src/engine/inference/select.ts';
import { Upstream } from '../src/engine/inference/upstream/client.ts';
import { appError } from './fixtures/errors.ts';
import { MODEL, MODELS_DIR } from './fixtures/models.ts';
import { startUpstream } from './fixtures/upstream.ts';

const engine = (overrides: Partial<ConstructorParameters<typeof EmbeddedEngine>[0]> = {}) =>
  new EmbeddedEngine({
    modelsDir: MODELS_DIR,
    contextLength: 512,
    parallel: 1,
    ttlS: 300,
    mmap: false,
    gpu: 'off',
    hubUrl: 'http://127.0.0.1:9',
    idleTimeoutMs: 5_000,
    ...overrides,
  });

/** The least a handler gives a backend: a signal, and somewhere for chunks and events to go. */
function context(): CallContext & { chunks: string[] } {
  const chunks: string[] = [];
  return {
    requestId: 'r',
    action: 'chat',
    signal: new AbortController().signal,
    owner: 'anonymous',
    caller: undefined as never,
    chunks,
    chunk: ({ delta }) => chunks.push(delta),
    event: () => {},
    attach: () => {},
  };
}

const chat = (model = MODEL) => ({ model, messages: [{ role: 'user' as const, content: 'Once upon a time' }], sampling: { max_tokens: 8 }, stream: true });

const select = suite('backend selection');

select('unset: a local Ollama while one answers, else the embedded engine; off: the embedded engine', async () => {
  const embedded = engine();
  const nobody = new Upstream({ idleTimeoutMs: 1_000, detectUrl: 'http://127.0.0.1:9' });
  assert.is((await chooseBackend({ upstream: nobody, upstreamUrl: undefined, embedded })()).name, 'embedded');
  assert.is((await chooseBackend({ upstream: nobody, upstreamUrl: 'off', embedded })()).name, 'embedded');
  const ollama = await startUpstream({ ollama: true });
  try {
    const local = new Upstream({ idleTimeoutMs: 1_000, detectUrl: ollama.url });
    assert.is((await chooseBackend({ upstream: local, upstreamUrl: undefined, embedded })()).name, 'upstream');
  } finally {
    await ollama.close();
    await embedded.close();
  }
});

select('a configured upstream that is down is its own error, not a quiet switch to another model', async () => {
  const embedded = engine();
  const down = new Upstream({ url: 'http://127.0.0.1:9', idleTimeoutMs: 1_000 });
  const backend = await chooseBackend({ upstream: down, upstreamUrl: 'http://127.0.0.1:9', embedded })();
  assert.is(backend.name, 'upstream');
  const error = await appError(backend.chat(chat('m'), context()));
  assert.is(error.code, 'backend_unavailable');
  assert.match(error.message, /Cannot reach the inference upstream/);
  await embedded.close();
});

select('the embedded engine called directly streams real tokens (the benchmark\'s baseline path)', async () => {
  const embedded = engine();
  try {
    const ctx = context();
    const answer = await embedded.chat(chat(), ctx);
    assert.is(answer.usage?.completion_tokens, 8);
    assert.is(ctx.chunks.join(''), answer.response);
  } finally {
    await embedded.close();
  }
});

select('an abort stops the generation within one token', async () => {
  const embedded = engine();
  try {
    const controller = new AbortController();
    // The first token goes out as a chunk at once: stop right there.
    const ctx = { ...context(), signal: controller.signal, chunk: () => controller.abort(new Error('stop')) };
    const answer = await embedded.chat({ ...chat(), sampling: { max_tokens: 500 } }, ctx);
    assert.is(answer.finish_reason, 'cancelled');
    assert.ok(answer.usage!.completion_tokens <= 2, `the token stopped at, and at most the one being written (${answer.usage!.completion_tokens})`);
    const next = await embedded.chat(chat(), context());
    assert.is(next.usage?.completion_tokens, 8, 'the model serves on');
  } finally {
    await embedded.close();
  }
});

const unavailable = suite('when node-llama-cpp cannot load');

unavailable('every request it would serve is backend_unavailable, naming node-llama-cpp and how to use an upstream', async () => {
  const embedded = engine({ importModule: () => Promise.reject(new Error('Cannot find module node-llama-cpp')) });
  for (const call of [() => embedded.chat(chat(), context()), () => embedded.models(), () => embedded.embed(MODEL, ['x'], new AbortController().signal)]) {
    const error = await appError(call());
    assert.is(error.code, 'backend_unavailable');
    assert.match(error.message, /node-llama-cpp.*cannot run here.*Cannot find module node-llama-cpp/);
    assert.match(error.message, /TABAGENT_UPSTREAM_URL/);
  }
  await embedded.close();
});

unavailable('a GPU build that is not installed is named as such', async () => {
  const embedded = engine({ gpu: 'cuda' });
  const error = await appError(embedded.chat(chat(), context()));
  assert.is(error.code, 'backend_unavailable');
  assert.match(error.message, /no cuda build of node-llama-cpp.*GPU builds/);
  await embedded.close();
});

select.run();
unavailable.run();
