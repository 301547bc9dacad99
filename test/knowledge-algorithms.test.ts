import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError } from '../src/errors.ts';
import { Bm25Index } from '../src/engine/knowledge/algorithms/bm25.ts';
import { reciprocalRankFusion } from '../src/engine/knowledge/algorithms/fusion.ts';
import { embedHashed, HASHED_MODEL } from '../src/engine/knowledge/algorithms/hashing-embedder.ts';
import { kmeans, mulberry32, representativeTerms } from '../src/engine/knowledge/algorithms/kmeans.ts';
import { retrievalMetrics } from '../src/engine/knowledge/algorithms/metrics.ts';
import { chunkText, tokenize } from '../src/engine/knowledge/algorithms/text.ts';
import { cosine, VectorIndex } from '../src/engine/knowledge/algorithms/vector-index.ts';

const close = (actual: number, expected: number, eps = 1e-6) =>
  assert.ok(Math.abs(actual - expected) < eps, `expected ${expected}, got ${actual}`);


function randomVectors(count: number, dims: number, seed: number): Float32Array[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: dims }, () => random() * 2 - 1));
}

// ---------------------------------------------------------------------------------------------------------------

const tokens = suite('tokenize');

tokens('lower-cases Unicode words, drops stopwords and single letters but keeps single digits', () => {
  assert.equal(tokenize("The Quick brown fox, it's 3 a.m. — Naïve café 東京 x2 B"), [
    'quick', 'brown', 'fox', '3', 'naïve', 'café', '東京', 'x2',
  ]);
});

tokens('returns nothing for punctuation, whitespace and stopword-only text', () => {
  assert.equal(tokenize(''), []);
  assert.equal(tokenize('  ...!?  '), []);
  assert.equal(tokenize('the of and it is'), []);
});

tokens.run();

// ---------------------------------------------------------------------------------------------------------------

const chunks = suite('chunkText');

const sentence = (i: number) => `Sentence number ${i} talks about topic ${i % 7} in some detail.`;
const paragraph = (from: number, count: number) => Array.from({ length: count }, (_, i) => sentence(from + i)).join(' ');

chunks('a short text is one chunk with whitespace normalized; blank text gives no chunks', () => {
  assert.equal(chunkText('  Hello   world.\n\n\n  Second\tpara.  '), ['Hello world.\n\nSecond para.']);
  assert.equal(chunkText(''), []);
  assert.equal(chunkText(' \n\n \t '), []);
});

chunks('prefers paragraph breaks: paragraphs that fit together stay whole', () => {
  const paras = [paragraph(0, 8), paragraph(10, 8), paragraph(20, 8)];
  // Two paragraphs fit in 1000 chars, three don't: the cut must fall on the second break.
  assert.ok(paras[0].length + paras[1].length + 2 <= 1000 && paras.join('\n\n').length > 1000);
  const result = chunkText(paras.join('\n\n'), { maxChars: 1000, overlapChars: 0 });
  assert.equal(result, [`${paras[0]}\n\n${paras[1]}`, paras[2]]);
});

chunks('then sentence ends: every chunk but the last ends with a full sentence', () => {
  const result = chunkText(paragraph(0, 100), { maxChars: 500, overlapChars: 0 });
  assert.ok(result.length > 5);
  for (const chunk of result) {
    assert.ok(chunk.length <= 500, `chunk of ${chunk.length} chars`);
    assert.ok(chunk.endsWith('.'), `chunk does not end on a sentence: …${chunk.slice(-30)}`);
    assert.ok(chunk.startsWith('Sentence'), `chunk does not start on a sentence: ${chunk.slice(0, 30)}…`);
  }
  assert.is(result.join(' '), paragraph(0, 100));
});

chunks('then spaces: text without sentence ends is cut between words, never inside one', () => {
  const words = Array.from({ length: 600 }, (_, i) => `word${i}`);
  const result = chunkText(words.join(' '), { maxChars: 300, overlapChars: 0 });
  const vocabulary = new Set(words);
  for (const chunk of result) {
    assert.ok(chunk.length <= 300 && chunk.length > 0);
    for (const w of chunk.split(' ')) assert.ok(vocabulary.has(w), `split word: ${w}`);
  }
  assert.is(result.join(' '), words.join(' '));
});

chunks('consecutive chunks overlap by at most overlapChars, starting on a word', () => {
  const text = paragraph(0, 80);
  const result = chunkText(text, { maxChars: 600, overlapChars: 150 });
  assert.ok(result.length > 3);
  for (let i = 1; i < result.length; i++) {
    const [prev, next] = [result[i - 1], result[i]];
    let shared = 0;
    for (let l = Math.min(prev.length, next.length); l > 0; l--) {
      if (prev.endsWith(next.slice(0, l))) {
        shared = l;
        break;
      }
    }
    assert.ok(shared > 0 && shared <= 150, `overlap ${shared} between chunks ${i - 1} and ${i}`);
    assert.ok(text.includes(` ${next.split(' ')[0]} `) || text.startsWith(next.split(' ')[0]));
  }
  assert.ok(result.every((c) => c.length <= 600 && c.trim() === c && c.length > 0));
  assert.ok(result[0].startsWith(sentence(0)) && result.at(-1)!.endsWith(sentence(79)));
});

chunks('is deterministic with the defaults (1200 chars, 150 overlap)', () => {
  const text = Array.from({ length: 12 }, (_, i) => paragraph(i * 10, 8)).join('\n\n');
  const a = chunkText(text);
  assert.equal(chunkText(text), a);
  assert.ok(a.length > 1 && a.every((c) => c.length <= 1200));
});

chunks('a word longer than a chunk is cut hard into consecutive pieces with no overlap inside it', () => {
  const long = 'x'.repeat(2500);
  const result = chunkText(`start ${long} end`, { maxChars: 1000, overlapChars: 150 });
  assert.is(result[0], 'start');
  assert.is(result.slice(1, -1).join('') + result.at(-1)!.replace(/ end$/, ''), long);
  assert.ok(result.every((c) => c.length <= 1000 && c.length > 0));
  // Never splits a surrogate pair.
  const emoji = chunkText('😀'.repeat(20), { maxChars: 7 });
  assert.ok(emoji.every((c) => !/[\ud800-\udbff]$/.test(c)));
  assert.is(emoji.join(''), '😀'.repeat(20));
});

chunks.run();

// ---------------------------------------------------------------------------------------------------------------

const hashed = suite('embedHashed');

hashed('gives unit vectors of the requested size, and all zeros for text with no features', () => {
  assert.is(HASHED_MODEL, 'tabagent-hashed-512');
  const v = embedHashed('Vectors for retrieval augmented generation');
  assert.is(v.length, 512);
  close(Math.hypot(...v), 1, 1e-5);
  assert.is(embedHashed('hello world', 64).length, 64);
  assert.ok(embedHashed('').every((x) => x === 0));
  assert.ok(embedHashed('the of and ...').every((x) => x === 0));
});

hashed('is deterministic', () => {
  assert.equal(embedHashed('Deterministic hashing of the same text'), embedHashed('Deterministic hashing of the same text'));
});

hashed('texts sharing words score clearly higher than unrelated texts', () => {
  const a = embedHashed('The cat sat on the mat and purred');
  const related = embedHashed('A cat was sitting on a mat');
  const unrelated = embedHashed('Quarterly revenue grew in Europe after the merger');
  const sim = cosine(a, related);
  const other = cosine(a, unrelated);
  assert.ok(sim > 0.3 && sim > other + 0.25, `related ${sim.toFixed(3)} vs unrelated ${other.toFixed(3)}`);
});

hashed('morphological variants get some similarity through character 3-grams', () => {
  const running = embedHashed('running');
  const variant = cosine(running, embedHashed('runs'));
  const unrelated = cosine(running, embedHashed('banana'));
  assert.ok(variant > 0.05 && variant > unrelated + 0.05, `runs ${variant.toFixed(3)} vs banana ${unrelated.toFixed(3)}`);
});

hashed.run();

// ---------------------------------------------------------------------------------------------------------------

const vectors = suite('VectorIndex');

function bruteForce(data: Map<number, Float32Array>, query: Float32Array, k: number) {
  return [...data]
    .map(([id, v]) => ({ id, score: cosine(v, query) }))
    .sort((a, b) => b.score - a.score || a.id - b.id)
    .slice(0, k);
}

vectors('top-k matches a brute-force cosine ranking on random data', () => {
  const data = randomVectors(2000, 64, 7);
  const index = new VectorIndex(64);
  const all = new Map<number, Float32Array>();
  data.forEach((v, i) => {
    index.add(i * 3, v);
    all.set(i * 3, v);
  });
  assert.is(index.size, 2000);
  for (const query of randomVectors(20, 64, 99)) {
    const got = index.search(query, 10);
    const want = bruteForce(all, query, 10);
    assert.equal(got.map((r) => r.id), want.map((r) => r.id));
    got.forEach((r, i) => close(r.score, want[i].score, 1e-4));
  }
  assert.is(index.search(data[0], 5000).length, 2000);
  assert.equal(index.search(data[0], 0), []);
});

vectors('remove swaps the last row in and keeps every remaining vector findable', () => {
  const data = randomVectors(300, 32, 3);
  const index = new VectorIndex(32);
  data.forEach((v, i) => index.add(i, v));
  const removed = [0, 299, 150, 1, 42, 298];
  for (const id of removed) assert.ok(index.remove(id));
  assert.not.ok(index.remove(42));
  assert.is(index.size, 300 - removed.length);
  data.forEach((v, i) => {
    assert.is(index.has(i), !removed.includes(i));
    if (removed.includes(i)) return;
    const [top] = index.search(v, 1);
    assert.is(top.id, i);
    close(top.score, 1, 1e-5);
  });
  // Re-adding an id replaces its vector instead of duplicating it.
  index.add(5, data[7]);
  assert.is(index.size, 294);
  assert.equal(index.search(data[7], 2).map((r) => r.id).sort(), [5, 7]);
});

vectors('accept filters ids before ranking', () => {
  const data = randomVectors(500, 16, 11);
  const index = new VectorIndex(16);
  data.forEach((v, i) => index.add(i, v));
  const result = index.search(data[10], 20, (id) => id % 2 === 1);
  assert.is(result.length, 20);
  assert.ok(result.every((r) => r.id % 2 === 1));
  assert.not.ok(result.some((r) => r.id === 10));
});

vectors('rejects vectors of the wrong size', () => {
  const index = new VectorIndex(8);
  assert.throws(() => index.add(1, new Float32Array(4)), (e: unknown) => e instanceof AppError && e.code === 'invalid_request');
});

vectors('benchmark: 10,000 × 512 search (printed, not asserted)', () => {
  const index = new VectorIndex(512);
  const random = mulberry32(5);
  const v = new Float32Array(512);
  for (let i = 0; i < 10_000; i++) {
    for (let j = 0; j < 512; j++) v[j] = random() - 0.5;
    index.add(i, v);
  }
  const queries = randomVectors(30, 512, 6);
  for (const q of queries.slice(0, 5)) index.search(q, 10); // warm-up for the JIT
  const t0 = performance.now();
  for (const q of queries) index.search(q, 10);
  const ms = (performance.now() - t0) / queries.length;
  console.log(`  [bench] VectorIndex search 10,000 × 512, k=10: ${ms.toFixed(2)} ms/query`);
});

vectors.run();

// ---------------------------------------------------------------------------------------------------------------

const bm25 = suite('Bm25Index');

function tinyCorpus(): Bm25Index {
  const index = new Bm25Index();
  index.add(1, ['cat', 'sat', 'mat']);
  index.add(2, ['dog', 'sat']);
  index.add(3, ['cat', 'cat', 'dog', 'ran']);
  return index;
}

bm25('scores a tiny corpus exactly as computed by hand (k1 = 1.2, b = 0.75)', () => {
  const index = tinyCorpus();
  // N = 3, avgdl = 3. idf(cat) = ln(1 + 1.5/2.5) = ln 1.6; idf(ran) = ln(1 + 2.5/1.5) = ln(8/3).
  // doc 1: tf 1, |d| = 3 → 2.2 / (1 + 1.2)            = 1          → ln 1.6
  // doc 3: tf 2, |d| = 4 → 4.4 / (2 + 1.2·1.25 = 3.5)  = 1.2571429  → 1.2571429·ln 1.6
  const cat = index.search(['cat'], 10);
  assert.equal(cat.map((r) => r.id), [3, 1]);
  close(cat[0].score, (4.4 / 3.5) * Math.log(1.6));
  close(cat[1].score, Math.log(1.6));
  // ran in doc 3: 2.2 / (1 + 1.5) = 0.88 → 0.88·ln(8/3), added to the cat term. Repeated query terms count once.
  const both = index.search(['cat', 'ran', 'ran'], 1);
  close(both[0].score, (4.4 / 3.5) * Math.log(1.6) + 0.88 * Math.log(8 / 3));
  assert.equal(index.search(['unknown'], 5), []);
});

bm25('rarer terms get higher idf', () => {
  const index = tinyCorpus();
  assert.ok(index.idf('ran') > index.idf('cat'));
  assert.ok(index.idf('cat') > 0);
  assert.is(index.idf('nowhere'), 0);
});

bm25('remove updates document frequencies and the average length', () => {
  const index = tinyCorpus();
  close(index.averageLength, 3);
  assert.ok(index.remove(3));
  assert.not.ok(index.remove(3));
  assert.is(index.size, 2);
  close(index.averageLength, 2.5);
  // N = 2, df(cat) = 1 → idf = ln 2; doc 1: 2.2 / (1 + 1.2·(0.25 + 0.75·3/2.5)) = 2.2 / 2.38.
  const [hit] = index.search(['cat'], 5);
  assert.is(hit.id, 1);
  close(hit.score, (2.2 / 2.38) * Math.log(2));
  assert.equal(index.search(['ran'], 5), []);
});

bm25('accept filters documents', () => {
  assert.equal(tinyCorpus().search(['cat'], 5, (id) => id !== 3).map((r) => r.id), [1]);
});

bm25('benchmark: 10,000 documents (printed, not asserted)', () => {
  const random = mulberry32(8);
  // Zipf-like vocabulary of 20,000 terms, 150 tokens per document.
  const word = () => `w${Math.floor(20_000 * random() ** 3)}`;
  const index = new Bm25Index();
  let t0 = performance.now();
  for (let d = 0; d < 10_000; d++) index.add(d, Array.from({ length: 150 }, word));
  const buildMs = performance.now() - t0;
  const queries = Array.from({ length: 50 }, () => [word(), word(), word(), word()]);
  for (const q of queries.slice(0, 5)) index.search(q, 10);
  t0 = performance.now();
  for (const q of queries) index.search(q, 10);
  const ms = (performance.now() - t0) / queries.length;
  console.log(`  [bench] Bm25Index 10,000 docs × 150 tokens: build ${buildMs.toFixed(0)} ms, search ${ms.toFixed(2)} ms/query (4 terms, k=10)`);
});

bm25.run();

// ---------------------------------------------------------------------------------------------------------------

const fusion = suite('reciprocalRankFusion');

fusion('fuses by rank, not score, with k = 60', () => {
  const keyword = [{ id: 1, score: 12.5 }, { id: 2, score: 9 }, { id: 3, score: 0.4 }];
  const vector = [{ id: 3, score: 0.91 }, { id: 1, score: 0.9 }];
  const fused = reciprocalRankFusion([keyword, vector]);
  assert.equal(fused.map((r) => r.id), [1, 3, 2]);
  close(fused[0].score, 1 / 61 + 1 / 62);
  close(fused[1].score, 1 / 63 + 1 / 61);
  close(fused[2].score, 1 / 62);
  close(reciprocalRankFusion([keyword], 0)[0].score, 1);
  assert.equal(reciprocalRankFusion([]), []);
});

fusion.run();

// ---------------------------------------------------------------------------------------------------------------

const clustering = suite('kmeans and representativeTerms');

function threeBlobs(): Float32Array[] {
  const random = mulberry32(21);
  const points: Float32Array[] = [];
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 12; i++) {
      const v = Float32Array.from({ length: 8 }, () => (random() - 0.5) * 0.2);
      v[c] += 1;
      points.push(v);
    }
  }
  return points;
}

clustering('separates well-separated clusters exactly', () => {
  const { assignments, centroids, iterations } = kmeans(threeBlobs(), 3);
  for (let c = 0; c < 3; c++) {
    const group = assignments.slice(c * 12, c * 12 + 12);
    assert.ok(group.every((a) => a === group[0]), `blob ${c} split: ${group}`);
  }
  assert.is(new Set([assignments[0], assignments[12], assignments[24]]).size, 3);
  assert.is(centroids.length, 3);
  for (const centroid of centroids) close(Math.hypot(...centroid), 1, 1e-5);
  assert.ok(iterations >= 1 && iterations < 100);
});

clustering('is deterministic for a seed', () => {
  const data = randomVectors(200, 16, 4);
  const a = kmeans(data, 5, { seed: 123 });
  const b = kmeans(data, 5, { seed: 123 });
  assert.equal(a.assignments, b.assignments);
  assert.equal(a.centroids, b.centroids);
  assert.is(a.iterations, b.iterations);
  assert.equal(kmeans(data, 5).assignments, kmeans(data, 5).assignments);
  assert.is(kmeans(data, 5, { maxIterations: 1 }).iterations, 1);
});

clustering('k greater than the number of documents is an invalid_request', () => {
  try {
    kmeans(randomVectors(3, 4, 1), 4);
    assert.unreachable('expected an AppError');
  } catch (error) {
    assert.instance(error, AppError);
    assert.is((error as AppError).code, 'invalid_request');
    assert.match((error as AppError).message, /k must be at most the number of documents/);
  }
  assert.throws(() => kmeans([], 1), (e: unknown) => e instanceof AppError);
});

clustering('k equal to the number of documents puts every document in its own cluster', () => {
  const { assignments } = kmeans(randomVectors(9, 6, 2), 9);
  assert.equal([...assignments].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

clustering('representative terms rank tf in cluster × idf, pushing down words shared by all clusters', () => {
  const docs = [
    ['apple', 'banana', 'fruit'],
    ['apple', 'fruit', 'juice'],
    ['engine', 'car', 'fruit'],
    ['car', 'wheel', 'engine', 'fruit'],
  ];
  // N = 4: idf(df 1) = ln 5, idf(df 2) = ln 3, idf(fruit, df 4) = ln 2.
  // Cluster 0: apple 2·ln3 = 2.20, banana = juice = ln5 = 1.61, fruit 2·ln2 = 1.39.
  assert.equal(representativeTerms(docs, [0, 0, 1, 1], 2, 3), [
    ['apple', 'banana', 'juice'],
    ['car', 'engine', 'wheel'],
  ]);
  assert.equal(representativeTerms(docs, [0, 0, 0, 0], 2, 1), [['fruit'], []]);
});

clustering.run();

// ---------------------------------------------------------------------------------------------------------------

const metrics = suite('retrievalMetrics');

metrics('computes MRR, recall@k and nDCG@10 for a hand-made case', () => {
  const rankings = [
    [3, 1, 2], // relevant 1 at rank 2
    [5, 6, 7, 8, 9, 10, 11], // relevant 10 at rank 6
    [0, 2], // relevant 7 absent
    [4, 9], // relevant 4 at rank 1
  ];
  const result = retrievalMetrics(rankings, [1, 10, 7, 4]);
  close(result.mrr, (1 / 2 + 1 / 6 + 0 + 1) / 4);
  close(result['recall@1'], 0.25);
  close(result['recall@5'], 0.5);
  close(result['recall@10'], 0.75);
  close(result['ndcg@10'], (1 / Math.log2(3) + 1 / Math.log2(7) + 1) / 4);
  assert.is(result.queries, 4);
  assert.equal(Object.keys(result), ['mrr', 'recall@1', 'recall@5', 'recall@10', 'ndcg@10', 'queries']);
  assert.equal(retrievalMetrics([], [], [3]), { mrr: 0, 'recall@3': 0, 'ndcg@10': 0, queries: 0 });
  assert.throws(() => retrievalMetrics([[1]], []), (e: unknown) => e instanceof AppError);
});

metrics.run();
