/**
 * The server side of `npm run bench:llm`, forked by bench/llm.ts: the app as `npm start` serves it, its embedded
 * engine on the test model, and beside it the same engine called directly (the baseline), in this one process so
 * that both run with the same llama.cpp, the same threads and the same event loop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import type { CallContext } from '../src/protocol/handlers.ts';
import { EmbeddedEngine } from '../src/engine/inference/embedded/index.ts';
import { setLogLevel } from '../src/log.ts';
import { modelsDirPath } from '../src/paths.ts';
import { serveApp } from '../src/serve.ts';

export interface GenerationRequest {
  model: string;
  prompt: string;
  maxTokens: number;
  seed: number;
}

export type ToLlmServer = { id: number; type: 'direct'; request: GenerationRequest };
export type FromLlmServer = { type: 'ready'; url: string } | { type: 'reply'; id: number; tokens: number; ms: number; firstTokenMs: number };

setLogLevel('warn');
const dataDir = mkdtempSync(path.join(tmpdir(), 'tabagent-bench-llm-'));
const config = loadConfig(process.env, { port: 0, dataDir, upstreamUrl: 'off', sessionRatePerMinute: 0, messageRatePerSecond: 0 });
const app = createApp(config);
await app.peerProcesses?.start();
const server = await serveApp(app, { hostname: '127.0.0.1', port: 0 }).ready();

/** The baseline: the engine as the handlers call it, chunks going nowhere. */
const direct = new EmbeddedEngine({
  modelsDir: modelsDirPath(dataDir, config.modelsDir),
  contextLength: config.contextLength,
  parallel: config.modelParallel,
  ttlS: -1,
  mmap: config.modelMmap === 'on',
  gpu: config.llamaGpu,
  threads: config.llamaThreads,
  hubUrl: config.modelHubUrl,
  idleTimeoutMs: config.upstreamIdleTimeoutMs,
});

async function runDirect({ model, prompt, maxTokens, seed }: GenerationRequest) {
  const started = performance.now();
  let firstTokenMs = 0;
  const ctx = {
    requestId: 'bench',
    action: 'chat',
    signal: new AbortController().signal,
    owner: 'bench',
    chunk: () => {
      firstTokenMs ||= performance.now() - started;
    },
    event: () => {},
    attach: () => {},
  } as unknown as CallContext;
  const answer = await direct.chat({ model, messages: [{ role: 'user', content: prompt }], sampling: { max_tokens: maxTokens, seed }, stream: true }, ctx);
  return { tokens: answer.usage?.completion_tokens ?? 0, ms: performance.now() - started, firstTokenMs };
}

process.on('message', (message: ToLlmServer) => {
  void runDirect(message.request).then((result) => process.send!({ type: 'reply', id: message.id, ...result } satisfies FromLlmServer));
});
process.on('disconnect', async () => {
  await direct.close();
  await app.close(0);
  await server.close(true);
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
});
process.send!({ type: 'ready', url: new URL(server.url!).origin } satisfies FromLlmServer);
