/**
 * `npm run bench:llm`: tokens per second of the embedded engine called directly against the same generation
 * streamed to a client over the data channel (and over a WebSocket), in one run, in rounds that alternate the
 * three. The server (bench/llm-server.ts) runs in a process of its own and the direct baseline runs there too, so
 * the clients' work is not counted against the engine. Target: the data channel costs under 5% of the tokens/s.
 * Writes bench/results/llm-<date>.json. Knobs: BENCH_LLM_ROUNDS (7), BENCH_LLM_TOKENS (1000), BENCH_LLM_MODEL
 * with TABAGENT_MODELS_DIR for another model (the test model by default).
 */
import wrtc from '@roamhq/wrtc';
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect } from '../src/client/index.ts';
import { setLogLevel } from '../src/log.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { MODEL, MODELS_DIR } from '../test/fixtures/models.ts';
import type { FromLlmServer, GenerationRequest, ToLlmServer } from './llm-server.ts';
import { round } from './measure.ts';

setLogLevel('warn');
const ROUNDS = Number(process.env.BENCH_LLM_ROUNDS ?? 7);
const request: GenerationRequest = {
  model: process.env.BENCH_LLM_MODEL ?? MODEL,
  prompt: 'Once upon a time',
  maxTokens: Number(process.env.BENCH_LLM_TOKENS ?? 1000),
  seed: 42,
};

interface Run {
  tokens: number;
  ms: number;
  firstTokenMs: number;
}

const child = fork(new URL('./llm-server.ts', import.meta.url), [], {
  execArgv: ['--import', 'tsx'],
  env: { ...process.env, TABAGENT_MODELS_DIR: process.env.TABAGENT_MODELS_DIR ?? MODELS_DIR },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const replies = new Map<number, (run: Run) => void>();
const url = await new Promise<string>((resolve, reject) => {
  child.once('exit', (code) => reject(new Error(`the bench server exited (${code})`)));
  child.on('message', (message: FromLlmServer) => {
    if (message.type === 'ready') resolve(message.url);
    else replies.get(message.id)?.(message);
  });
});
let nextId = 0;
const direct = (): Promise<Run> =>
  new Promise((resolve) => {
    const id = ++nextId;
    replies.set(id, resolve);
    child.send({ id, type: 'direct', request } satisfies ToLlmServer);
  });

const params = { model: request.model, messages: [{ role: 'user' as const, content: request.prompt }], max_tokens: request.maxTokens, seed: request.seed, stream: true };

const client = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
async function dataChannel(): Promise<Run> {
  const started = performance.now();
  let firstTokenMs = 0;
  const stream = client.stream('chat', params);
  for await (const _chunk of stream) firstTokenMs ||= performance.now() - started;
  const answer = await stream.result;
  return { tokens: answer.usage?.completion_tokens ?? 0, ms: performance.now() - started, firstTokenMs };
}

const socket = await WebSocketClient.connect(`${url.replace('http', 'ws')}/v1/ws`);
async function webSocket(): Promise<Run> {
  const started = performance.now();
  let firstTokenMs = 0;
  const { frame } = await socket.request({ action: 'chat', ...params }, { onFrame: () => (firstTokenMs ||= performance.now() - started) });
  return { tokens: (frame.usage as { completion_tokens: number }).completion_tokens, ms: performance.now() - started, firstTokenMs };
}

const paths = { direct, data_channel: dataChannel, websocket: webSocket };
const runs: Record<keyof typeof paths, Run[]> = { direct: [], data_channel: [], websocket: [] };
for (const run of Object.values(paths)) await run(); // loads the model into both engines, warms the paths
for (let i = 0; i < ROUNDS; i++) {
  for (const [name, run] of Object.entries(paths) as [keyof typeof paths, () => Promise<Run>][]) runs[name].push(await run());
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const summary = Object.fromEntries(
  Object.entries(runs).map(([name, list]) => [
    name,
    {
      tokens_per_s: round(median(list.map((r) => (r.tokens / r.ms) * 1000)), 1),
      first_token_ms: round(median(list.map((r) => r.firstTokenMs)), 2),
      tokens: median(list.map((r) => r.tokens)),
    },
  ]),
) as Record<keyof typeof paths, { tokens_per_s: number; first_token_ms: number; tokens: number }>;

/** Each round's ratio to the direct run beside it: steadier than a ratio of medians while the machine's load moves. */
const pairedRatio = (name: keyof typeof paths) => median(runs[name].map((r, i) => r.tokens / r.ms / (runs.direct[i].tokens / runs.direct[i].ms)));
console.log(`\n${request.model}, ${request.maxTokens} tokens a generation, median of ${ROUNDS} rounds:\n`);
console.log('| path | tokens/s | vs direct, same round | first token (ms) |');
console.log('| --- | --- | --- | --- |');
for (const [name, result] of Object.entries(summary) as [keyof typeof paths, (typeof summary)['direct']][]) {
  console.log(`| ${name} | ${result.tokens_per_s} | ${round(pairedRatio(name), 3)}× | ${result.first_token_ms} |`);
}
const cost = 1 - pairedRatio('data_channel');
console.log(`\ndata channel cost: ${round(cost * 100, 1)}% of the direct tokens/s (target under 5%): ${cost < 0.05 ? 'PASS' : 'MISS'}`);

const results = path.join(import.meta.dirname, 'results');
mkdirSync(results, { recursive: true });
const file = path.join(results, `llm-${new Date().toISOString().slice(0, 10)}.json`);
const ratios = { data_channel: pairedRatio('data_channel'), websocket: pairedRatio('websocket') };
writeFileSync(file, JSON.stringify({ request, rounds: ROUNDS, summary, ratios, runs }, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);

await client.close();
socket.close();
child.disconnect();
