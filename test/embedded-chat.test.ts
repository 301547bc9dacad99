/**
 * The embedded engine's generation on a real model (stories260K, test/fixtures/models/), driven by a real wrtc client
 * over the data channel: streamed chat, cancellation, JSON output under a schema, tools, context limits.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TabAgentClient } from '../src/client/index.ts';
import { appError } from './fixtures/errors.ts';
import { ask, MODEL, startModelServer } from './fixtures/models.ts';
import type { TestServer } from './fixtures/server.ts';

let server: TestServer;
let client: TabAgentClient;

const chat = suite('embedded chat');
chat.before(async () => {
  server = await startModelServer();
  client = await server.client();
});
chat.after(() => server.close());

chat('streams real tokens: the chunks, in order, are the answer, with usage counted by the tokenizer', async () => {
  const stream = client.stream('chat', { ...ask('Once upon a time'), stream: true, max_tokens: 48, seed: 7 });
  const deltas: string[] = [];
  for await (const chunk of stream) deltas.push(chunk.delta);
  const final = await stream.result;
  // Tokens written within 10 ms of the last chunk go out together (CHUNK_INTERVAL_MS); the first goes at once.
  assert.ok(deltas.length >= 2, `chunks came as tokens were written (${deltas.length})`);
  assert.is(deltas.join(''), final.response);
  assert.match(final.response, /[a-z]+ [a-z]+/i, 'words');
  assert.is(final.model, MODEL);
  assert.is(final.usage?.completion_tokens, 48);
  assert.ok((final.usage?.prompt_tokens ?? 0) > 3);
  assert.is(final.usage?.total_tokens, final.usage!.prompt_tokens + 48);
  assert.is(final.finish_reason, 'length');
});

chat('the same seed writes the same story; generate completes a raw prompt as the model was trained', async () => {
  const once = await client.request('chat', { ...ask('Tell me a story'), max_tokens: 24, seed: 3 });
  const again = await client.request('chat', { ...ask('Tell me a story'), max_tokens: 24, seed: 3 });
  assert.is(again.response, once.response);
  const story = await client.request('generate', { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 0 });
  assert.match(story.response, /^, there was a little (girl|boy)/, 'greedy decoding writes the TinyStories opening');
  assert.is(story.usage?.completion_tokens, 24);
});

chat('stop_generation stops the generation mid-stream: the answer is cancelled and the model serves the next request', async () => {
  const stream = client.stream('chat', { ...ask('Once upon a time'), stream: true, max_tokens: 1500 });
  let received = 0;
  const error = await (async () => {
    try {
      for await (const _chunk of stream) {
        if (++received === 5) await client.cancel(stream.requestId);
      }
    } catch (e) {
      return e as { code?: string };
    }
  })();
  assert.is(error?.code, 'cancelled');
  assert.ok(received < 1500, `it stopped long before its 1,500 tokens (${received} chunks)`);
  const next = await client.request('chat', { ...ask('Hello'), max_tokens: 8 });
  assert.is(next.usage?.completion_tokens, 8, 'the sequence was given back');
});

chat('response_format json_schema: even this tiny model answers JSON that validates', async () => {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 24 },
      age: { type: 'integer' },
      mood: { enum: ['happy', 'sad', 'scared'] },
      friends: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 3 },
    },
    required: ['name', 'age', 'mood', 'friends'],
  };
  for (const seed of [1, 2, 3]) {
    const answer = await client.request('chat', {
      ...ask('Describe the girl in the story.'),
      seed,
      response_format: { type: 'json_schema', json_schema: { name: 'character', schema } },
    });
    const value = JSON.parse(answer.response) as { name: unknown; age: unknown; mood: unknown; friends: unknown[] };
    assert.equal(Object.keys(value).sort(), ['age', 'friends', 'mood', 'name'], `seed ${seed}: ${answer.response}`);
    assert.type(value.name, 'string');
    assert.ok((value.name as string).length <= 24);
    assert.ok(Number.isInteger(value.age), `age ${value.age}`);
    assert.ok(['happy', 'sad', 'scared'].includes(value.mood as string));
    assert.ok(Array.isArray(value.friends) && value.friends.length <= 3 && value.friends.every((f) => typeof f === 'string'));
  }
  const unenforceable = { type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]{3}$' } } };
  const bad = await appError(client.request('chat', { ...ask('x'), response_format: { type: 'json_schema', json_schema: { name: 'x', schema: unenforceable } } }));
  assert.is(bad.code, 'invalid_request', 'a keyword it would skip is refused, not ignored');
  assert.is((bad.details as { field: string }).field, 'response_format.json_schema.schema.properties.code.pattern');
});

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, days: { type: 'integer' } }, required: ['city', 'days'] },
  },
};

chat('tool_choice names a tool: a tool call whose arguments validate, streamed as tool_calls chunks too', async () => {
  const stream = client.stream('chat', { ...ask('What is the weather in Paris?'), stream: true, seed: 5, tools: [weather], tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  let streamed = '';
  const ids = new Set<string>();
  for await (const chunk of stream) {
    assert.is(chunk.delta, '');
    for (const call of chunk.tool_calls as { id?: string; function: { name?: string; arguments: string } }[]) {
      if (call.id) ids.add(call.id);
      streamed += call.function.arguments;
    }
  }
  const final = await stream.result;
  assert.is(final.finish_reason, 'tool_calls');
  assert.is(final.tool_calls?.length, 1);
  const [call] = final.tool_calls!;
  assert.is(call.function.name, 'get_weather');
  assert.equal([...ids], [call.id], 'the first chunk carried the call id');
  const args = JSON.parse(call.function.arguments) as { city: string; days: number };
  assert.equal(JSON.parse(streamed), args, 'the streamed pieces are the arguments');
  assert.type(args.city, 'string');
  assert.ok(args.city.length <= 16 && Number.isInteger(args.days));
});

chat('tool results go back in as tool messages and the model answers on; a result without its call is refused', async () => {
  const answer = await client.request('chat', {
    model: MODEL,
    max_tokens: 16,
    tools: [weather],
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":1}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"sky":"sunny","temperature":21}' },
    ],
  });
  assert.ok(answer.response.length > 0 || (answer.tool_calls?.length ?? 0) > 0, 'it went on');
  assert.is(answer.usage?.completion_tokens, 16);
  const orphan = await appError(client.request('chat', { model: MODEL, messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'nope', content: 'x' }] }));
  assert.is(orphan.code, 'invalid_request');
  assert.is((orphan.details as { field: string }).field, 'messages.1.tool_call_id');
});

chat('a prompt longer than the context is context_length_exceeded, saying both lengths; images are not_supported', async () => {
  const { model } = await client.request('model_info', { model_id: MODEL });
  assert.is(model.context_length, 2048);
  const long = 'The little dog ran to the park and played with a big red ball. '.repeat(200);
  const error = await appError(client.request('chat', ask(long)));
  assert.is(error.code, 'context_length_exceeded');
  const details = error.details as { prompt_tokens: number; context_length: number };
  assert.is(details.context_length, 2048);
  assert.ok(details.prompt_tokens > 2048);
  const image = await appError(
    client.request('chat', { model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] }),
  );
  assert.is(image.code, 'not_supported');
  assert.match(image.message, /upstream/);
});

chat('responses runs as a chat on the embedded engine; select_model makes the model the default', async () => {
  const answered = await client.request('responses', { model: MODEL, input: 'Once upon a time', instructions: 'Tell a story.', max_tokens: 12 });
  assert.is(answered.usage?.completion_tokens, 12);
  const selected = await client.request('select_model', { model_id: MODEL });
  assert.is(selected.model_id, MODEL);
  const defaulted = await client.request('chat', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
  assert.is(defaulted.model, MODEL);
});

chat.run();
