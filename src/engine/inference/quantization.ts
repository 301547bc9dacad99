/** Quantization types and the names that carry them: bits per weight, aliases, parsing. No I/O. */

/**
 * Effective bits per weight of llama.cpp / GGUF quantization types.
 *
 * Sources (llama.cpp, github.com/ggml-org/llama.cpp):
 * - Single-format types: exact, from the block layouts in ggml/src/ggml-common.h (bytes per block × 8 / weights
 *   per block): Q4_0 18 B/32 = 4.5, Q4_1 20/32 = 5, Q5_0 22/32 = 5.5, Q5_1 24/32 = 6, Q8_0 34/32 = 8.5,
 *   Q6_K 210/256 = 6.5625, IQ4_NL 18/32 = 4.5, IQ4_XS 136/256 = 4.25, MXFP4 17/32 = 4.25; F32/F16/BF16 by width.
 * - K-quant mixes (Q2_K, Q3_K_*, Q4_K_*, Q5_K_*), which keep some tensors at higher precision: the measured
 *   "Bits per Weight (BPW)" table for Llama 2 7B in tools/quantize/README.md (examples/quantize/README.md
 *   before the move): Q2_K 3.35, Q3_K_S 3.50, Q3_K_M 3.91, Q3_K_L 4.27, Q4_K_S 4.58, Q4_K_M 4.84, Q5_K_S 5.52,
 *   Q5_K_M 5.68, Q6_K 6.56.
 * - I-quants: the nominal bpw in QUANT_OPTIONS of tools/quantize/quantize.cpp ("IQ2_XXS 2.06 bpw",
 *   "IQ3_XXS 3.06 bpw", "IQ4_XS 4.25 bpw non-linear", ...).
 *
 * Whole files of models with large vocabularies come out a little bigger (the same README's Llama 3.1 8B table
 * measures Q4_K_M at 4.89 and IQ4_XS at 4.46 bits/weight), which is one reason the estimate adds an overhead.
 */
export const BITS_PER_WEIGHT: Record<string, number> = {
  F32: 32,
  F16: 16,
  BF16: 16,
  Q8_0: 8.5,
  Q6_K: 6.5625,
  Q5_1: 6,
  Q5_K_M: 5.68,
  Q5_K_S: 5.52,
  Q5_0: 5.5,
  Q4_1: 5,
  Q4_K_M: 4.84,
  Q4_K_S: 4.58,
  Q4_0: 4.5,
  IQ4_NL: 4.5,
  IQ4_XS: 4.25,
  MXFP4: 4.25,
  Q3_K_L: 4.27,
  Q3_K_M: 3.91,
  IQ3_M: 3.66,
  Q3_K_S: 3.5,
  IQ3_S: 3.44,
  Q2_K: 3.35,
  IQ3_XS: 3.3,
  IQ3_XXS: 3.06,
  IQ2_M: 2.7,
  IQ2_S: 2.5,
  IQ2_XS: 2.31,
  IQ2_XXS: 2.06,
  IQ1_M: 1.75,
  IQ1_S: 1.56,
};

/** llama.cpp's aliases (quantize.cpp: "Q4_K: alias for Q4_K_M") and the common spellings of float types. */
const QUANT_ALIASES: Record<string, string> = {
  Q3_K: 'Q3_K_M',
  Q4_K: 'Q4_K_M',
  Q5_K: 'Q5_K_M',
  FP16: 'F16',
  FP32: 'F32',
  BFLOAT16: 'BF16',
};

/** Upper case, with llama.cpp's aliases and the `fp16`/`fp32` spellings resolved. */
export function normalizeQuantization(name: string): string {
  const upper = name.trim().toUpperCase().replace(/-/g, '_');
  return QUANT_ALIASES[upper] ?? upper;
}

/**
 * The parameter count a name or size label states: '8.0B' → 8e9, '350M' → 3.5e8, 'llama3.2:3b' → 3e9,
 * 'qwen2.5-7b-instruct-q4_K_M' → 7e9, 'SmolLM2-135M-Instruct' → 1.35e8. Mixture-of-experts names multiply
 * out ('mixtral:8x7b' → 56e9), which is an upper bound: experts share the attention weights (Mixtral 8×7B
 * has 46.7 B). Active-parameter suffixes ('qwen3:30b-a3b') are skipped in favour of the total. None → undefined.
 */
export function parseParameterCount(text: string): number | undefined {
  const pattern = /(?:^|[^a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bmt])(?![a-z0-9])/gi;
  for (const match of text.matchAll(pattern)) {
    const experts = match[1] ? Number(match[1]) : 1;
    const value = Number(match[2]);
    const unit = match[3].toLowerCase();
    const scale = unit === 't' ? 1e12 : unit === 'b' ? 1e9 : 1e6;
    const count = Math.round(experts * value * scale);
    if (count > 0) return count;
  }
  return undefined;
}

/**
 * The quantization a name or tag states, normalized: 'llama3.1:8b-instruct-q4_K_M' → 'Q4_K_M',
 * 'Meta-Llama-3-8B-Instruct.Q8_0.gguf' → 'Q8_0', 'qwen2.5:7b-instruct-fp16' → 'F16', 'model-bf16.gguf' → 'BF16',
 * 'Llama-3.2-3B-Instruct-IQ4_XS.gguf' → 'IQ4_XS'. None → undefined.
 */
export function parseQuantization(text: string): string | undefined {
  return findQuantization(text)?.name;
}

/** Where a name states its quantization: the normalized name, and the span of the text that says it. */
export function findQuantization(text: string): { name: string; start: number; end: number } | undefined {
  const match = /(?:^|[^a-z0-9])(i?q\d(?:_[a-z0-9]+)+|bf16|fp16|f16|fp32|f32|mxfp4)(?=$|[^a-z0-9_])/i.exec(text);
  if (!match) return undefined;
  const end = match.index + match[0].length;
  return { name: normalizeQuantization(match[1]), start: end - match[1].length, end };
}

export function knownQuantizations(): string {
  return Object.keys(BITS_PER_WEIGHT).join(', ');
}
