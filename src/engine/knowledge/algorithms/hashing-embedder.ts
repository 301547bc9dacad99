/**
 * The built-in embedding model: feature hashing, no weights to download, same vector on every runtime.
 * It is lexical, not semantic (synonyms don't match), but it makes vector search and clustering work out of
 * the box and is a fixed baseline for evaluating real embedding models.
 *
 * Features per text (over `tokenize`, so stopwords are already gone):
 *  - word unigrams, weight 1: the main topical signal;
 *  - word bigrams, weight 0.5: phrase/order information ("machine learning"), but each bigram also repeats
 *    two unigrams, so full weight would double-count the same evidence;
 *  - character 3-grams of each word with boundaries (`^run`, ..., `ng$`), weight 0.3: they give
 *    morphological variants ("running"/"runs") and typos partial overlap; a word has about as many 3-grams
 *    as letters, so a low weight keeps them from outweighing exact word matches in the norm.
 * Each feature's count becomes 1 + ln(tf) (sublinear: a word repeated 10 times is not 10 times the topic),
 * is hashed with FNV-1a 32-bit to a dimension, and signed by the hash's top bit so that collisions cancel on
 * average instead of piling up. The vector is L2-normalized; a text with no features is all zeros.
 */
import { AppError } from '../../../errors.ts';
import { tokenize } from './text.ts';

export const HASHED_MODEL = 'tabagent-hashed-512';

const UNIGRAM_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const CHARGRAM_WEIGHT = 0.3;

/** FNV-1a 32-bit over the UTF-8 bytes of `text` (encoded inline: no TextEncoder allocation per feature). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  const byte = (b: number) => {
    h = Math.imul(h ^ b, 0x01000193);
  };
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    // Combine a surrogate pair into one code point so astral characters hash as their UTF-8 bytes.
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) byte(cp);
    else if (cp < 0x800) {
      byte(0xc0 | (cp >> 6));
      byte(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
      byte(0xe0 | (cp >> 12));
      byte(0x80 | ((cp >> 6) & 63));
      byte(0x80 | (cp & 63));
    } else {
      byte(0xf0 | (cp >> 18));
      byte(0x80 | ((cp >> 12) & 63));
      byte(0x80 | ((cp >> 6) & 63));
      byte(0x80 | (cp & 63));
    }
  }
  return h >>> 0;
}

export function embedHashed(text: string, dims = 512): Float32Array {
  if (!Number.isInteger(dims) || dims < 1) {
    throw new AppError('invalid_request', `Embedding dimensions must be a positive integer, got ${dims}`);
  }
  // Feature → count. Prefixes ("w:", "b:", "c:") keep the three feature kinds in separate hash spaces, so the
  // word "ing" and the 3-gram "ing" are different features; the prefix also selects the weight below.
  const counts = new Map<string, number>();
  const count = (feature: string) => counts.set(feature, (counts.get(feature) ?? 0) + 1);
  const tokens = tokenize(text);
  for (let i = 0; i < tokens.length; i++) {
    const word = tokens[i];
    count(`w:${word}`);
    if (i > 0) count(`b:${tokens[i - 1]} ${word}`);
    const bounded = `^${word}$`;
    for (let j = 0; j + 3 <= bounded.length; j++) count(`c:${bounded.slice(j, j + 3)}`);
  }

  const vector = new Float32Array(dims);
  for (const [feature, tf] of counts) {
    const h = fnv1a(feature);
    const sign = h >>> 31 ? -1 : 1; // top bit for the sign, low bits (via modulo) for the slot
    const weight = feature[0] === 'w' ? UNIGRAM_WEIGHT : feature[0] === 'b' ? BIGRAM_WEIGHT : CHARGRAM_WEIGHT;
    vector[h % dims] += sign * weight * (1 + Math.log(tf));
  }
  let norm = 0;
  for (let i = 0; i < dims; i++) norm += vector[i] * vector[i];
  if (norm > 0) {
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dims; i++) vector[i] *= scale;
  }
  return vector;
}
