/**
 * What extension agents need from `chat`, against an upstream (the test double of test/fixtures/upstream.ts): tools
 * and tool calls (whole and streamed), tool results, response_format and images pass through in OpenAI's shapes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TabAgentClient } from '../src/client/index.ts';
import { appError } from './fixtures/errors.ts';
import { startServer, type TestServer } from './fixtures/server.ts';
import { startUpstream, type Upstream, type UpstreamOptions } from './fixtures/upstream.ts';

async function withStack(options: UpstreamOptions, run: (stack: { upstream: Upstream; client: TabAgentClient; server: TestServer }) => Promise<void>) {
  const upstream = await startUpstream(options);
  const server = await startServer({ upstreamUrl: upstream.url });
  try {
    await run({ upstream, server, client: await server.client() });
  } finally {
    await server.close();
    await upstream.close();
  }
}

const lastChat = (upstream: Upstream) => [...upstream.requests].reverse().find((r) => r.path === '/v1/chat/completions')?.body as Record<string, unknown>;

const weather = {
  type: 'function' as const,
  function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};
const forced = { type: 'function' as const, function: { name: 'get_weather' } };

const features = suite('chat features through an upstream');

features('tools and tool_choice go to the upstream; its tool_calls come back with finish_reason tool_calls', () =>
  withStack({}, async ({ client, upstream }) => {
    const answer = await client.request('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content: 'weather in Paris' }], tools: [weather], tool_choice: forced });
    assert.equal(lastChat(upstream).tools, [weather]);
    assert.equal(lastChat(upstream).tool_choice, forced);
    assert.is(answer.finish_reason, 'tool_calls');
    assert.is(answer.response, '');
    assert.is(answer.tool_calls?.[0].function.name, 'get_weather');
    assert.equal(JSON.parse(answer.tool_calls![0].function.arguments), { echo: 'weather in Paris' });
  }),
);

features('streamed tool calls arrive as tool_calls chunks and are joined in the final answer', () =>
  withStack({}, async ({ client }) => {
    const stream = client.stream('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content: 'weather in Oslo' }], tools: [weather], tool_choice: forced, stream: true });
    const pieces: string[] = [];
    for await (const chunk of stream) {
      for (const call of (chunk.tool_calls ?? []) as { function: { arguments?: string } }[]) pieces.push(call.function.arguments ?? '');
    }
    const final = await stream.result;
    assert.ok(pieces.filter(Boolean).length >= 2, 'the arguments came in pieces');
    assert.is(pieces.join(''), final.tool_calls?.[0].function.arguments);
    assert.equal(JSON.parse(pieces.join('')), { echo: 'weather in Oslo' });
    assert.is(final.finish_reason, 'tool_calls');
  }),
);

features('tool results and response_format go through as OpenAI spells them', () =>
  withStack({}, async ({ client, upstream }) => {
    const messages = [
      { role: 'user' as const, content: 'weather?' },
      { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool' as const, tool_call_id: 'call_1', content: '{"sky":"clear"}' },
    ];
    const format = { type: 'json_schema' as const, json_schema: { name: 'w', schema: { type: 'object' } } };
    await client.request('chat', { model: 'llama3.2:3b', messages, tools: [weather], response_format: format });
    assert.equal(lastChat(upstream).messages, messages);
    assert.equal(lastChat(upstream).response_format, format);
  }),
);

features('an image part stands for the binary attachment: it goes up as an image_url data URL', () =>
  withStack({}, async ({ client, upstream }) => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const content = [{ type: 'text' as const, text: 'what is this' }, { type: 'image' as const, mime_type: 'image/png' }];
    await client.call('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content }] }, { attachment: png });
    const sent = (lastChat(upstream).messages as { content: { type: string; image_url?: { url: string } }[] }[])[0].content;
    assert.equal(sent[1], { type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(png).toString('base64')}` } });
    const missing = await appError(client.request('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content }] }));
    assert.is(missing.code, 'invalid_request', 'an image part without an attachment');
  }),
);

features('Ollama says which models read images: one that cannot is not_supported before anything is sent', () =>
  withStack({ ollama: true }, async ({ client, upstream }) => {
    const content = [{ type: 'image_url' as const, image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }];
    const error = await appError(client.request('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content }] }));
    assert.is(error.code, 'not_supported');
    assert.match(error.message, /cannot read images/);
    assert.is(lastChat(upstream), undefined);
  }),
);

features('tool_choice must name a tool the request gives', () =>
  withStack({}, async ({ client }) => {
    const error = await appError(client.request('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content: 'x' }], tools: [weather], tool_choice: { type: 'function', function: { name: 'other' } } }));
    assert.is(error.code, 'invalid_request');
    assert.is((error.details as { field: string }).field, 'tool_choice');
  }),
);

features.run();
