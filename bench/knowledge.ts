/**
 * `npm run bench:knowledge`: ingest 10,000 documents, then time queries, on the embedded store and (when
 * BENCH_DATABASE_URL or TEST_DATABASE_URL names one) on PostgreSQL. Goes through the same handlers as requests do
 * (the dispatcher, no transport), so the numbers are the store, the embedding and the search.
 * Writes bench/results/knowledge-<date>.json.
 */
import { writeFileSync } from 'node:fs';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { Caller } from '../src/dispatch.ts';
import { ANONYMOUS_IDENTITY } from '../src/security/auth.ts';
import { setLogLevel } from '../src/log.ts';
import { openStore } from '../src/store/index.ts';
import type { Action } from '../src/protocol/registry.ts';
import { storeBackends, type StoreBackend } from '../test/fixtures/store.ts';

setLogLevel('warn');
const DOCUMENTS = Number(process.env.BENCH_DOCUMENTS ?? 10_000);
const BATCH = 500;
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);

/** Deterministic text: words drawn from a vocabulary with a skewed (Zipf-like) distribution, like real prose. */
function corpus(count: number): { id: string; content: string; metadata: { topic: string } }[] {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const vocabulary = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}`);
  const word = () => vocabulary[Math.floor(vocabulary.length * random() ** 3)];
  return Array.from({ length: count }, (_, i) => ({
    id: `doc-${i}`,
    content: Array.from({ length: 40 + Math.floor(random() * 160) }, word).join(' '),
    metadata: { topic: `t${i % 10}` },
  }));
}

const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const round = (n: number) => Math.round(n * 100) / 100;

async function run(backend: StoreBackend) {
  await backend.init?.();
  const store = await openStore(backend.options());
  const app = createApp(loadConfig({}, { port: 0, upstreamUrl: 'off' }), { store });
  const caller = new Caller('bench', ANONYMOUS_IDENTITY);
  let n = 0;
  const call = async (action: Action, params: unknown) => {
    const { frame } = await app.dispatcher.execute(caller, { requestId: `b${++n}`, action, params });
    if (frame.type === 'error') throw new Error(JSON.stringify(frame));
    return frame;
  };

  const documents = corpus(DOCUMENTS);
  const ingestStart = performance.now();
  for (let i = 0; i < documents.length; i += BATCH) await call('add_documents', { documents: documents.slice(i, i + BATCH) });
  const ingestSeconds = (performance.now() - ingestStart) / 1000;

  const texts = corpus(QUERIES).map((d) => d.content.split(' ').slice(0, 6).join(' '));
  const firstQuery = performance.now();
  await call('rag_query', { query: texts[0], top_k: 10 }); // the index loads the store's chunks once
  const warmMs = performance.now() - firstQuery;
  const timings: Record<string, number[]> = { rag_query: [], semantic_search_query: [], filtered: [] };
  for (const query of texts) {
    for (const [name, action, params] of [
      ['rag_query', 'rag_query', { query, top_k: 10 }],
      ['semantic_search_query', 'semantic_search_query', { query, k: 10 }],
      ['filtered', 'rag_query', { query, top_k: 10, filters: { topic: 't3' } }],
    ] as const) {
      const start = performance.now();
      await call(action, params);
      timings[name].push(performance.now() - start);
    }
  }
  await app.close(0);
  await store.close();
  await backend.cleanup();

  const queries = Object.fromEntries(
    Object.entries(timings).map(([name, samples]) => {
      const sorted = samples.sort((a, b) => a - b);
      return [name, { p50_ms: round(percentile(sorted, 0.5)), p99_ms: round(percentile(sorted, 0.99)) }];
    }),
  );
  return { backend: backend.name, documents: DOCUMENTS, ingest_docs_per_s: Math.round(DOCUMENTS / ingestSeconds), first_query_ms: round(warmMs), queries };
}

if (!process.env.TEST_DATABASE_URL && process.env.BENCH_DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.BENCH_DATABASE_URL;
const results = [];
for (const backend of storeBackends().available) {
  const result = await run(backend);
  results.push(result);
  console.log(`\n${result.backend}: ${result.documents} documents at ${result.ingest_docs_per_s} docs/s; first query ${result.first_query_ms} ms`);
  for (const [name, q] of Object.entries(result.queries)) console.log(`  ${name.padEnd(24)} p50 ${q.p50_ms} ms   p99 ${q.p99_ms} ms`);
}
const file = new URL(`./results/knowledge-${new Date().toISOString().slice(0, 10)}.json`, import.meta.url);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, results }, null, 2) + '\n');
console.log(`\nwrote ${file.pathname}`);
process.exit(0);
