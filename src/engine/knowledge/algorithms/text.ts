/**
 * Text helpers shared by search, RAG and clustering: one tokenizer (so BM25, the hashed embedder and cluster
 * labels agree on what a "word" is) and one chunker (so every document is cut the same way, run after run).
 * Pure functions, no runtime APIs: they run the same in Node, Deno and the extension.
 */

/**
 * A deliberately small English stopword list: articles, pronouns, auxiliaries, common prepositions and
 * conjunctions. Small because BM25's idf already discounts frequent words; the list only removes the words
 * that carry no topic at all and would otherwise dominate the hashed embedding and cluster labels.
 * Negations ("not", "no") are kept: they change meaning.
 */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    'a an the and or but if then else so than that this these those there here ' +
    'is am are was were be been being do does did done have has had having ' +
    'i me my we us our you your he him his she her it its they them their ' +
    'of to in on at by for with from as into onto about over under up down out off ' +
    'what which who whom whose when where why how ' +
    'will would shall should can could may might must ' +
    'all any each some such own same too very just also only'
  ).split(' '),
);

const WORD = /[\p{L}\p{N}]+/gu;
const DIGIT = /^\p{N}$/u;

/**
 * Lower-cased runs of Unicode letters/digits, stopwords removed. Single-character tokens are dropped
 * ("s" from "it's", stray initials) except digits, which matter in versions, quantities and model names.
 */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const token = match[0];
    if (STOPWORDS.has(token)) continue;
    if (token.length === 1 && !DIGIT.test(token)) continue;
    out.push(token);
  }
  return out;
}

export interface ChunkOptions {
  /** Longest chunk in UTF-16 code units (default 1200: a few paragraphs, well under embedder/context limits). */
  maxChars?: number;
  /** Text repeated from the end of one chunk at the start of the next (default 150), so a fact cut at a
   *  boundary is still whole in one chunk. Capped at half of maxChars so chunks always advance. */
  overlapChars?: number;
}

/** Paragraphs kept as "\n\n" (they are the preferred cut points); any other whitespace run becomes one space. */
function normalizeWhitespace(text: string): string {
  return text
    .split(/\n[^\S\n]*\n\s*/)
    .map((paragraph) => paragraph.replace(/\s+/g, ' ').trim())
    .filter(Boolean)
    .join('\n\n');
}

// End of a sentence: terminal punctuation, optional closing quotes/brackets, then whitespace.
const SENTENCE_END = /[.!?…。！？]["'”’)\]]*\s/g;

/**
 * Where to end a chunk that starts at `start` and may not go past `limit` (exclusive end index).
 * Preference: the last paragraph break, else the last sentence end, else the last space; the first two only
 * when they leave the chunk at least half full, so a paragraph break near the start doesn't make a tiny chunk.
 * With no space at all (one huge "word", e.g. a URL or base64) it cuts hard at the limit.
 */
function cutPoint(text: string, start: number, limit: number): number {
  const minEnd = start + Math.floor((limit - start) / 2);
  const paragraph = text.lastIndexOf('\n\n', limit - 1);
  if (paragraph >= minEnd && paragraph + 2 <= limit) return paragraph;
  let sentence = -1;
  SENTENCE_END.lastIndex = minEnd;
  for (let m = SENTENCE_END.exec(text); m && m.index + m[0].length <= limit; m = SENTENCE_END.exec(text)) {
    sentence = m.index + m[0].length - 1; // cut on the whitespace after the punctuation
  }
  if (sentence >= minEnd) return sentence;
  // A limit that falls on whitespace is itself a word boundary.
  if (/\s/.test(text[limit] ?? '')) return limit;
  const space = Math.max(text.lastIndexOf(' ', limit - 1), text.lastIndexOf('\n', limit - 1));
  if (space > start) return space;
  // Hard cut; never split a surrogate pair.
  const code = text.charCodeAt(limit - 1);
  return code >= 0xd800 && code <= 0xdbff && limit - 1 > start ? limit - 1 : limit;
}

/**
 * Splits text into chunks of at most `maxChars`, cutting at paragraph breaks, then sentence ends, then spaces,
 * and mid-word only for words longer than a chunk. Consecutive chunks overlap by up to `overlapChars`, the
 * overlap starting on a word boundary. Short texts give one chunk, blank texts none. Deterministic.
 */
export function chunkText(text: string, options: ChunkOptions = {}): string[] {
  const maxChars = Math.max(1, Math.floor(options.maxChars ?? 1200));
  const overlap = Math.max(0, Math.min(Math.floor(options.overlapChars ?? 150), Math.floor(maxChars / 2)));
  const clean = normalizeWhitespace(text);
  if (!clean) return [];
  if (clean.length <= maxChars) return [clean];

  const chunks: string[] = [];
  let start = 0;
  while (start < clean.length) {
    if (clean.length - start <= maxChars) {
      chunks.push(clean.slice(start).trim());
      break;
    }
    const end = cutPoint(clean, start, start + maxChars);
    const chunk = clean.slice(start, end).trim();
    if (chunk) chunks.push(chunk);
    // Next chunk starts `overlap` chars back, moved forward to the next word start; if that word start is
    // not before `end` (a hard-cut long word) there is no overlap.
    let next = end;
    if (overlap > 0) {
      let p = Math.max(end - overlap, start + 1);
      if (!/\s/.test(clean[p - 1] ?? '')) {
        const ws = clean.slice(p, end).search(/\s/);
        p = ws < 0 ? end : p + ws + 1;
      }
      next = p;
    }
    // Skip whitespace so chunks never start with it.
    while (next < clean.length && /\s/.test(clean[next])) next++;
    start = next;
  }
  return chunks;
}
