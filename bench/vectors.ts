/**
 * `npm run bench:vectors`: the search index's exact in-memory scan against libSQL's own vector search, at 10k, 50k
 * and 100k chunks (512-dimensional vectors of the embedded hashed model over a Zipf-like vocabulary, as
 * bench:knowledge makes), so the choice between them rests on numbers from this machine:
 * - memory: `VectorIndex` (src/engine/knowledge/algorithms/vector-index.ts), the top 10 by cosine, brute force;
 * - SQL scan: `ORDER BY vector_distance_cos(...) LIMIT 10` over an `F32_BLOB(512)` column, exact;
 * - DiskANN: libSQL's approximate index (`libsql_vector_idx`, `vector_top_k`), with its recall@10 against exact.
 * Loading time is the cost of filling each: memory from vectors at hand, the SQL table and its index by inserts.
 */
import Database from 'libsql';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { embedHashed } from '../src/engine/knowledge/algorithms/hashing-embedder.ts';
import { VectorIndex } from '../src/engine/knowledge/algorithms/vector-index.ts';
import { percentiles, round } from './measure.ts';

const SIZES = (process.env.BENCH_VECTOR_SIZES ?? '10000,50000,100000').split(',').map(Number);
const QUERIES = Number(process.env.BENCH_VECTOR_QUERIES ?? 50);
/** DiskANN inserts are slow; past this size its row is skipped (set BENCH_DISKANN_MAX to measure more). */
const DISKANN_MAX = Number(process.env.BENCH_DISKANN_MAX ?? 10_000);
const DIMS = 512;

function texts(count: number, seed: number, words: number): string[] {
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const word = () => `w${Math.floor(5000 * random() ** 3).toString(36)}`;
  return Array.from({ length: count }, () => Array.from({ length: words }, word).join(' '));
}

const time = (fn: () => void) => {
  const start = performance.now();
  fn();
  return performance.now() - start;
};

function measure(size: number) {
  const vectors = texts(size, 7, 120).map((text) => embedHashed(text, DIMS));
  const queries = texts(QUERIES, 99, 6).map((text) => embedHashed(text, DIMS));
  const row: Record<string, unknown> = { chunks: size };

  const index = new VectorIndex(DIMS);
  row.memory_load_ms = round(time(() => vectors.forEach((vector, id) => index.add(id + 1, vector))), 0);
  const exact = queries.map((query) => index.search(query, 10).map((hit) => hit.id));
  const memory: number[] = [];
  for (const query of queries) memory.push(time(() => index.search(query, 10)));
  row.memory_p50_ms = percentiles(memory).p50_ms;

  const dir = mkdtempSync(path.join(tmpdir(), 'bench-vectors-'));
  try {
    const db = new Database(path.join(dir, 'vectors.sqlite'));
    db.exec(`PRAGMA journal_mode = WAL; CREATE TABLE v (id integer PRIMARY KEY, embedding F32_BLOB(${DIMS}))`);
    const insert = db.prepare('INSERT INTO v (id, embedding) VALUES (?, ?)');
    const fill = () => {
      db.exec('BEGIN');
      vectors.forEach((vector, i) => insert.run([i + 1, Buffer.from(vector.buffer)]));
      db.exec('COMMIT');
    };
    row.sql_load_ms = round(time(fill), 0);
    const scan = db.prepare('SELECT id FROM v ORDER BY vector_distance_cos(embedding, ?) LIMIT 10');
    const sql: number[] = [];
    for (const query of queries) sql.push(time(() => scan.all([Buffer.from(query.buffer)])));
    row.sql_scan_p50_ms = percentiles(sql).p50_ms;

    if (size <= DISKANN_MAX) {
      db.exec('DELETE FROM v');
      db.exec("CREATE INDEX v_ann ON v (libsql_vector_idx(embedding, 'metric=cosine'))");
      row.diskann_load_ms = round(time(fill), 0);
      const top = db.prepare("SELECT id FROM vector_top_k('v_ann', ?, 10)");
      const ann: number[] = [];
      let found = 0;
      queries.forEach((query, q) => {
        let ids: number[] = [];
        ann.push(time(() => (ids = (top.raw().all([Buffer.from(query.buffer)]) as number[][]).map((r) => r[0]))));
        found += ids.filter((id) => exact[q].includes(id)).length;
      });
      row.diskann_p50_ms = percentiles(ann).p50_ms;
      row.diskann_recall_at_10 = round(found / (queries.length * 10), 3);
    }
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return row;
}

const rows = SIZES.map(measure);
console.table(rows);
