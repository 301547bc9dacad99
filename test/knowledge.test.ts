/**
 * History, documents and RAG end to end: a real wrtc client, the server, and the store on both backends
 * (embedded SQLite in a temporary directory; PostgreSQL when TEST_DATABASE_URL is set, as `.ci/run` does).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TabAgentClient } from '../src/client/index.ts';
import { openStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { startServer, type TestServer } from './fixtures/server.ts';
import { storeBackends } from './fixtures/store.ts';
import { appError } from './fixtures/errors.ts';


const CORPUS = [
  { id: 'tea', content: 'Green tea is brewed at 80 degrees for two minutes; black tea takes boiling water.', metadata: { topic: 'drinks', lang: 'en' } },
  { id: 'coffee', content: 'Espresso is coffee forced through fine grounds under nine bars of pressure.', metadata: { topic: 'drinks', lang: 'en' } },
  { id: 'bike', content: 'A bicycle chain needs oil every few hundred kilometres to keep it from rusting.', metadata: { topic: 'bikes', lang: 'en' } },
  { id: 'tyres', content: 'Road bike tyres are pumped to about seven bar; mountain bike tyres far less.', metadata: { topic: 'bikes', lang: 'en' } },
  { id: 'velo', content: 'Le vélo de route a des pneus fins gonflés à sept bars.', metadata: { topic: 'bikes', lang: 'fr' } },
];

const backends = storeBackends();
for (const backend of backends.available) {
  const knowledge = suite(`knowledge on ${backend.name}`);
  let store: Store;
  let server: TestServer;
  let client: TabAgentClient;

  knowledge.before(async () => {
    await backend.init?.();
    store = await openStore(backend.options());
    server = await startServer({}, { store });
    client = await server.client();
  });
  knowledge.after(async () => {
    await server?.close();
    await store?.close();
    await backend.cleanup();
  });

  knowledge('add_documents chunks and embeds; rag_query ranks the relevant document first, with scores and timing', async () => {
    const added = await client.request('add_documents', { documents: CORPUS });
    assert.equal(added.ids, CORPUS.map((d) => d.id));
    assert.is(added.embedding_model, 'tabagent-hashed-512');
    const found = await client.request('rag_query', { query: 'how long to brew green tea', top_k: 3 });
    assert.is(found.results[0].id, 'tea');
    assert.ok(found.results[0].score > 0);
    assert.ok(found.results[0].scores.lexical! > 0 && found.results[0].scores.vector! > 0, 'both rankings found it');
    assert.equal(found.results[0].metadata, { topic: 'drinks', lang: 'en' });
    assert.ok(found.query_time_ms >= 0);
    const listed = await client.request('list_documents', { limit: 2 });
    assert.is(listed.total, CORPUS.length);
    assert.is(listed.documents.length, 2);
  });

  knowledge('semantic_search_query is vector-only; filters narrow by metadata; an unknown filter is a typed error', async () => {
    const semantic = await client.request('semantic_search_query', { query: 'bicycle chain oil', k: 2 });
    assert.is(semantic.results[0].id, 'bike');
    assert.is(semantic.results[0].scores.lexical, undefined);
    const french = await client.request('rag_query', { query: 'pneus vélo', filters: { lang: 'fr' } });
    assert.equal(french.results.map((r) => r.id), ['velo']);
    const bikes = await client.request('rag_query', { query: 'pressure bar', top_k: 10, filters: { topic: 'bikes' } });
    assert.ok(bikes.results.every((r) => r.metadata.topic === 'bikes'));
    const error = await appError(client.request('rag_query', { query: 'x', filters: { colour: 'red' } }));
    assert.is(error.code, 'invalid_request');
    assert.match(error.message, /colour/);
  });

  knowledge('replacing a document by id replaces what search finds; delete_documents removes it', async () => {
    await client.request('add_documents', { documents: [{ id: 'coffee', content: 'Cold brew steeps coarse grounds overnight in the fridge.' }] });
    const cold = await client.request('rag_query', { query: 'cold brew overnight fridge', top_k: 1 });
    assert.is(cold.results[0].id, 'coffee');
    const espresso = await client.request('rag_query', { query: 'espresso nine bars pressure', top_k: 5 });
    assert.not.ok(espresso.results.some((r) => r.content.includes('Espresso')), 'the old text is gone');
    assert.equal(await client.request('delete_documents', { ids: ['coffee', 'nope'] }), { type: 'documents_deleted', deleted: 1 });
    const after = await client.request('rag_query', { query: 'cold brew overnight fridge', top_k: 5 });
    assert.not.ok(after.results.some((r) => r.id === 'coffee'));
  });

  knowledge('save_message keeps history per session, newest kept under a limit, and messages become searchable', async () => {
    for (const [i, content] of ['first question about sourdough', 'an answer about starter feeding', 'third message'].entries()) {
      await client.request('save_message', { session_id: 's1', message: { role: i % 2 ? 'assistant' : 'user', content } });
    }
    await client.request('save_message', { session_id: 's2', message: { role: 'user', content: 'other session' } });
    const history = await client.request('chat_history', { session_id: 's1' });
    assert.equal(history.messages.map((m) => m.content), ['first question about sourdough', 'an answer about starter feeding', 'third message']);
    const lastTwo = await client.request('chat_history', { session_id: 's1', limit: 2 });
    assert.equal(lastTwo.messages.map((m) => m.content), ['an answer about starter feeding', 'third message']);
    assert.is((await client.request('chat_history')).messages.length, 4);
    const found = await client.request('rag_query', { query: 'sourdough starter', filters: { source: 'message', session_id: 's1' } });
    assert.ok(found.results.length >= 1);
    assert.ok(found.results.every((r) => r.source === 'message' && r.metadata.session_id === 's1'));
  });

  knowledge('similarity, recommendation, clustering and evaluation use the embedded model without an upstream', async () => {
    const related = await client.request('calculate_similarity', { text1: 'green tea brewing', text2: 'brewing green tea leaves' });
    const unrelated = await client.request('calculate_similarity', { text1: 'green tea brewing', text2: 'bicycle chain oil' });
    assert.ok(related.similarity > unrelated.similarity);
    const recommended = await client.request('recommend_content', {
      query: 'bike maintenance',
      candidates: ['tea recipes', 'bike chain maintenance guide', 'coffee beans'],
      top_n: 1,
    });
    assert.is(recommended.recommendations[0].index, 1);
    const clusters = await client.request('cluster_documents', {
      documents: ['tea leaves brew', 'green tea brew', 'black tea leaves', 'bike chain oil', 'bike tyre pump', 'bike chain rust'],
      n_clusters: 2,
    });
    const [a, b] = [clusters.assignments.slice(0, 3), clusters.assignments.slice(3)];
    assert.ok(new Set(a).size === 1 && new Set(b).size === 1 && a[0] !== b[0], 'tea and bikes separate');
    assert.ok(clusters.clusters.some((c) => c.terms.includes('bike')));
    const evaluation = await client.request('evaluate_embeddings', {
      model: 'tabagent-hashed-512',
      queries: ['brew green tea', 'oil the bike chain'],
      documents: ['green tea brewing guide', 'bicycle chain oiling', 'unrelated text about stars'],
    });
    assert.is(evaluation.metrics.mrr, 1);
    assert.is(evaluation.metrics['recall@1'], 1);
  });

  knowledge('bad input gets typed errors: empty content, too many clusters, top_n past the candidates, unpaired queries', async () => {
    assert.is((await appError(client.request('add_documents', { documents: [{ content: '   ' }] }))).code, 'invalid_request');
    assert.is((await appError(client.request('cluster_documents', { documents: ['a b', 'c d'], n_clusters: 3 }))).code, 'invalid_request');
    assert.is((await appError(client.request('recommend_content', { query: 'q', candidates: ['a'], top_n: 2 }))).code, 'invalid_request');
    const unpaired = client.request('evaluate_embeddings', { model: 'tabagent-hashed-512', queries: ['a', 'b'], documents: ['a'] });
    assert.is((await appError(unpaired)).code, 'invalid_request');
    const tooMany = Array.from({ length: 1_001 }, (_, i) => ({ content: `doc ${i}` }));
    assert.is((await appError(client.request('add_documents', { documents: tooMany }))).code, 'invalid_request');
  });

  knowledge('settings, history and documents survive a restart', async () => {
    await client.request('set_params', { params: { temperature: 0.4 } });
    await client.request('save_inference_settings', { repo_id: 'llama3.2', variant: '3b', settings: { top_k: 30 } });
    await server.close();
    await store.close();

    store = await openStore(backend.options());
    server = await startServer({}, { store });
    client = await server.client();
    assert.equal((await client.request('get_params')).params, { temperature: 0.4 });
    assert.equal((await client.request('get_inference_settings', { repo_id: 'llama3.2', variant: '3b' })).settings, { top_k: 30 });
    assert.is((await client.request('chat_history', { session_id: 's1' })).messages.length, 3);
    assert.is((await client.request('rag_query', { query: 'green tea brew', top_k: 1 })).results[0].id, 'tea');
  });

  if (backend.kind === 'postgres') {
    knowledge('two server instances on one database each find what the other stored', async () => {
      const otherStore = await openStore(backend.options());
      const other = await startServer({}, { store: otherStore });
      try {
        const otherClient = await other.client();
        await client.request('rag_query', { query: 'warm up this instance index' });
        await otherClient.request('add_documents', { documents: [{ id: 'shared', content: 'Saffron is the dried stigma of the crocus flower.' }] });
        const found = await client.request('rag_query', { query: 'saffron crocus stigma', top_k: 1 });
        assert.is(found.results[0].id, 'shared');
        await client.request('delete_documents', { ids: ['shared'] });
        const gone = await otherClient.request('rag_query', { query: 'saffron crocus stigma', top_k: 3 });
        assert.not.ok(gone.results.some((r) => r.id === 'shared'));
      } finally {
        await other.close();
        await otherStore.close();
      }
    });
  }

  knowledge.run();
}
if (backends.missing) {
  const missing = suite('knowledge on PostgreSQL');
  missing('TEST_DATABASE_URL is set in CI', () => assert.unreachable(backends.missing));
  missing.run();
}
