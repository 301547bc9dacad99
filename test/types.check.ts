/**
 * Type-level tests, checked by `tsc` (the last step of `npm test`): the registry's types reject unknown actions
 * and wrong inputs at compile time, on the data-channel client and on the tRPC client alike.
 * Each `@ts-expect-error` fails the build if the line below it stops being an error.
 */
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../routers/index.ts';
import type { ConnectionState, TabAgent, TabAgentClient } from '../src/client/index.ts';
import type { Action, RequestInput, ResponseOf } from '../src/protocol/registry.ts';
import type { EngineHandlers } from '../src/protocol/handlers.ts';

declare const client: TabAgentClient;

export async function dataChannelClient() {
  const health = await client.request('health');
  const status: 'ok' | 'shutting_down' = health.status;
  const tag: 'health' = health.type;

  const chat = await client.request('chat', { messages: [{ role: 'user', content: 'hi' }] });
  const text: string = chat.response;

  // @ts-expect-error an unknown action does not compile
  await client.request('nope');
  // @ts-expect-error a required parameter is missing
  await client.request('chat', {});
  // @ts-expect-error a field of the wrong type
  await client.request('set_params', { params: { temperature: 'hot' } });
  // @ts-expect-error a role outside the enum
  await client.request('chat', { messages: [{ role: 'robot', content: 'hi' }] });
  // @ts-expect-error an unknown field
  await client.request('model_info', { model_id: 'm', bogus: 1 });
  const called = await client.request('chat', {
    messages: [{ role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image', mime_type: 'image/png' }] }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const args: string | undefined = called.tool_calls?.[0].function.arguments;
  // @ts-expect-error response_format is json_object, json_schema or text
  await client.request('chat', { messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'yaml' } });
  // @ts-expect-error a content part of an unknown type
  await client.request('chat', { messages: [{ role: 'user', content: [{ type: 'audio', data: '' }] }] });
  // @ts-expect-error only streaming types can be streamed
  client.stream('health', {});
  // @ts-expect-error events are typed by name
  client.on('model_loading_progress', (data) => data.nonexistent);

  return [status, tag, text, args];
}

declare const typed: TabAgent;

export async function typedMethods() {
  const health = await typed.health();
  const status: 'ok' | 'shutting_down' = health.status;
  const chat = await typed.chat({ messages: [{ role: 'user', content: 'hi' }] }, { requestId: 'mine' });
  const text: string = chat.response;
  typed.on('connection', (state) => {
    const known: ConnectionState = state;
    return known;
  });

  // @ts-expect-error no method for an unknown action
  await typed.chatt({ messages: [] });
  // @ts-expect-error a required parameter is missing
  await typed.chat();
  // @ts-expect-error a field of the wrong type
  await typed.set_params({ params: { temperature: 'hot' } });
  // @ts-expect-error the answer is typed: a health answer has no `response`
  typed.health().then((answer) => answer.response);

  return [status, text];
}

export async function trpcClient() {
  const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: 'http://127.0.0.1:8080/trpc', transformer: superjson })] });
  const offer = await trpc.webrtc.offer.mutate({ clientId: 'tab-1' });
  const expires: Date = offer.expiresAt;
  const params = await trpc.rpc.get_params.query();
  const temperature: number | undefined = params.params.temperature;

  // @ts-expect-error no such procedure
  await trpc.rpc.nope.query();
  // @ts-expect-error reads are queries, not mutations
  await trpc.rpc.health.mutate();
  // @ts-expect-error wrong input type
  await trpc.rpc.model_info.query({ model_id: 42 });
  // @ts-expect-error answers need a session id
  await trpc.webrtc.answer.mutate({ answerSdp: 'v=0' });

  return [expires, temperature];
}

// The derived types agree with each other.
type Assert<T extends true> = T;
export type InputsAreParams = Assert<RequestInput<'embeddings'> extends { input: string | string[] } ? true : false>;
export type EveryActionAnswers = Assert<ResponseOf<Action>['type'] extends string ? true : false>;

/** An engine is as complete as the registry says: a request type its declaration gives it must have a handler. */
export function engineCompleteness(knowledge: EngineHandlers<'knowledge'>) {
  const { rag_query: _missing, ...withoutOne } = knowledge;
  // @ts-expect-error rag_query is declared with engine 'knowledge': an engine without its handler does not compile
  const incomplete: EngineHandlers<'knowledge'> = withoutOne;
  // @ts-expect-error chat is the inference engine's, not the knowledge engine's
  const misplaced: EngineHandlers<'knowledge'>['chat'] = knowledge.rag_query;
  return [incomplete, misplaced];
}
