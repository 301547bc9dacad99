/**
 * Memory estimates for `estimate_memory` and `check_compatibility`: pure arithmetic over what the upstream
 * (or the model's name) says about a model, with the reasoning spelled out in plain words. No I/O here.
 *
 * The estimate is weights + KV cache + 10% runtime overhead. It is meant to be honest rather than precise:
 * the KV cache is an upper bound unless the attention head counts are known (grouped-query attention needs
 * several times less), and runtimes differ in their buffers.
 */
import { AppError } from '../../errors.ts';
import type { GpuInfo } from '../machine.ts';

/** What is known of a model, from the upstream (Ollama's /api/show and /api/tags) or from its name. */
export interface ModelFacts {
  model: string;
  /** e.g. 'Q4_K_M', 'Q8_0', 'F16' (Ollama's details.quantization_level). */
  quantization?: string;
  /** e.g. 8030261248 (Ollama model_info['general.parameter_count']). */
  parameterCount?: number;
  /** The weights file size, when the upstream reports it. */
  sizeBytes?: number;
  /** Trained context (model_info['<arch>.context_length']); caps the default context of the KV-cache estimate. */
  contextLength?: number;
  /** model_info['<arch>.block_count'], when known. */
  layers?: number;
  /** model_info['<arch>.embedding_length'], when known. */
  embeddingLength?: number;
  /** model_info['<arch>.attention.head_count'], when known: with headCountKv, makes the KV cache exact for GQA. */
  headCount?: number;
  /** model_info['<arch>.attention.head_count_kv'], when known. */
  headCountKv?: number;
}

export interface MemoryEstimate {
  model: string;
  quantization: string;
  estimated_bytes: number;
  reasoning: string;
}

export interface MachineMemory {
  totalBytes: number;
  freeBytes: number;
  gpus: GpuInfo[];
}

export type Compatibility = MemoryEstimate & { compatible: boolean; available_bytes: number; device: 'cpu' | 'gpu' };

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

/** What a suggestion may step down to: the common quantizations, largest first. */
const SUGGESTION_LADDER = ['F16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K'];

const DEFAULT_QUANTIZATION = 'Q4_K_M';
const DEFAULT_CONTEXT_TOKENS = 4096;
const OVERHEAD_FRACTION = 0.1;
/** Fraction of free memory a model may take: the rest is left to the OS, the display and fragmentation. */
const USABLE_FRACTION = 0.9;
const F16_BYTES = 2;
/**
 * Rough KV-cache rule when the layer count and width are unknown: bytes per token per billion parameters.
 * A 7B model without grouped-query attention (Llama 2 7B: 32 layers × 4096 dims × 2 (K and V) × 2 bytes
 * = 524,288 bytes per token, for 6.74 B parameters) needs ≈ 78,000; rounded up to 80,000. Models with
 * grouped-query attention need 4–8× less, so this is an upper bound.
 */
const ROUGH_KV_BYTES_PER_TOKEN_PER_BILLION = 80_000;

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
  const pattern = /(?:^|[^a-z0-9])(i?q\d(?:_[a-z0-9]+)+|bf16|fp16|f16|fp32|f32|mxfp4)(?=$|[^a-z0-9_])/gi;
  for (const match of text.matchAll(pattern)) return normalizeQuantization(match[1]);
  return undefined;
}

/** Bytes as GB with two decimals (1 GB = 1e9 bytes). */
export function formatGB(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function formatParameters(count: number): string {
  return count >= 1e9 ? `${(count / 1e9).toFixed(2)} B` : `${Math.round(count / 1e6)} M`;
}

function formatBits(bits: number): string {
  return String(Number(bits.toFixed(4)));
}

function positive(value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
}

function knownQuantizations(): string {
  return Object.keys(BITS_PER_WEIGHT).join(', ');
}

interface Breakdown {
  estimate: MemoryEstimate;
  quantization: string;
}

function estimate(facts: ModelFacts, options: { quantization?: string; contextLength?: number } = {}): Breakdown {
  const notes: string[] = [];
  const model = facts.model;

  let requested: string | undefined;
  if (options.quantization !== undefined && options.quantization.trim() !== '') {
    requested = normalizeQuantization(options.quantization);
    if (!(requested in BITS_PER_WEIGHT)) {
      throw new AppError('invalid_request', `Unknown quantization "${options.quantization}"; known: ${knownQuantizations()}`, {
        details: { quantization: options.quantization, known: Object.keys(BITS_PER_WEIGHT) },
      });
    }
  }
  if (options.contextLength !== undefined && !(Number.isInteger(options.contextLength) && options.contextLength > 0)) {
    throw new AppError('invalid_request', `contextLength must be a positive whole number of tokens, not ${options.contextLength}`);
  }

  const own = facts.quantization ? normalizeQuantization(facts.quantization) : parseQuantization(model);
  const ownBits = own !== undefined ? BITS_PER_WEIGHT[own] : undefined;
  const sizeBytes = positive(facts.sizeBytes);

  // Parameters: the upstream's count, else the name's, else what the file size implies at its own quantization.
  let parameters = positive(facts.parameterCount);
  let parameterSource = '';
  if (parameters === undefined) {
    parameters = parseParameterCount(model);
    if (parameters !== undefined) {
      parameterSource = ` (read from the name "${model}")`;
      const moe = /(\d+)x(\d+(?:\.\d+)?)[bmt]/i.exec(model);
      if (moe) {
        notes.push(
          `"${moe[0]}" names a mixture of experts: the experts share their attention weights, so ${formatParameters(parameters)} is an upper bound`,
        );
      }
    } else if (sizeBytes !== undefined && ownBits !== undefined) {
      parameters = (sizeBytes * 8) / ownBits;
      parameterSource = ` (inferred from the ${formatGB(sizeBytes)} file at ${own})`;
    }
  }

  // Weights.
  let quantization: string;
  let weightsBytes: number;
  let weightsText: string;
  if (sizeBytes !== undefined && (requested === undefined || requested === own)) {
    quantization = own ?? 'unknown';
    weightsBytes = sizeBytes;
    weightsText = `the weights file is ${formatGB(sizeBytes)}${own ? ` at ${own}` : ''}, as the upstream reports it`;
  } else {
    if (parameters === undefined) {
      const wanted = requested ? ` at ${requested}` : '';
      throw new AppError(
        'invalid_request',
        `Cannot estimate the memory of "${model}"${wanted}: its parameter count is unknown (the upstream did not report it and the name states none)` +
          (requested && sizeBytes !== undefined ? `, and its own quantization is unknown or not in the table, so its ${formatGB(sizeBytes)} file cannot be rescaled` : '') +
          (sizeBytes === undefined ? ', and so is its file size' : ''),
        { details: { model, missing: sizeBytes === undefined ? ['parameter_count', 'size_bytes'] : ['parameter_count', 'quantization'] } },
      );
    }
    if (requested) {
      quantization = requested;
    } else if (ownBits !== undefined && own !== undefined) {
      quantization = own;
    } else {
      quantization = DEFAULT_QUANTIZATION;
      notes.push(
        own
          ? `the model's quantization "${own}" is not in the table, so ${DEFAULT_QUANTIZATION} is assumed`
          : `the model's quantization is unknown, so ${DEFAULT_QUANTIZATION} (Ollama's usual default) is assumed`,
      );
    }
    const bits = BITS_PER_WEIGHT[quantization];
    weightsBytes = (parameters * bits) / 8;
    weightsText = `${formatParameters(parameters)} parameters${parameterSource} at ${quantization} (≈${formatBits(bits)} bits/weight) ≈ ${formatGB(weightsBytes)} of weights`;
  }

  // KV cache, f16 keys and values for every layer and token of the context.
  const trained = positive(facts.contextLength);
  let tokens: number;
  let contextText: string;
  if (options.contextLength !== undefined) {
    tokens = options.contextLength;
    contextText = `${tokens} tokens (as asked)`;
  } else if (trained !== undefined && trained < DEFAULT_CONTEXT_TOKENS) {
    tokens = trained;
    contextText = `${tokens} tokens (the model's trained context)`;
  } else {
    tokens = DEFAULT_CONTEXT_TOKENS;
    contextText = `${tokens} tokens (the default context${trained !== undefined ? `; the model was trained for ${trained}` : ''})`;
  }
  const layers = positive(facts.layers);
  const width = positive(facts.embeddingLength);
  const heads = positive(facts.headCount);
  const kvHeads = positive(facts.headCountKv);
  let kvBytes: number;
  let kvText: string;
  if (layers !== undefined && width !== undefined) {
    const gqa = heads !== undefined && kvHeads !== undefined && kvHeads < heads ? kvHeads / heads : 1;
    kvBytes = 2 * layers * width * gqa * tokens * F16_BYTES;
    const gqaText = gqa < 1 ? ` × ${kvHeads}/${heads} KV heads` : '';
    kvText =
      `KV cache for ${contextText} ≈ ${formatGB(kvBytes)} (${layers} layers × ${width} dims${gqaText} × 2 (K and V) × 2 bytes (f16) × ${tokens} tokens)` +
      (gqa < 1 ? '' : '; an upper bound: models with grouped-query attention need several times less');
  } else {
    // Without a parameter count (file size only), count the parameters the weights would hold at Q4_K_M.
    const billions = parameters !== undefined ? parameters / 1e9 : (weightsBytes * 8) / BITS_PER_WEIGHT[DEFAULT_QUANTIZATION] / 1e9;
    kvBytes = ROUGH_KV_BYTES_PER_TOKEN_PER_BILLION * billions * tokens;
    kvText =
      `KV cache for ${contextText} ≈ ${formatGB(kvBytes)}, a rough upper bound (layer count and width unknown: ` +
      `${formatParameters(billions * 1e9)} parameters × ${ROUGH_KV_BYTES_PER_TOKEN_PER_BILLION.toLocaleString('en-US')} bytes per token per billion × ${tokens} tokens, ` +
      `what a 7B model without grouped-query attention needs; `+
      `models with grouped-query attention need 4–8× less)`;
  }

  const overheadBytes = OVERHEAD_FRACTION * (weightsBytes + kvBytes);
  const total = Math.round(weightsBytes + kvBytes + overheadBytes);
  const reasoning =
    `${capitalize(weightsText)}; ${kvText}; runtime overhead ${OVERHEAD_FRACTION * 100}% ≈ ${formatGB(overheadBytes)} → ≈ ${formatGB(total)}.` +
    (notes.length ? ` Note: ${notes.join('; ')}.` : '');
  return { estimate: { model, quantization, estimated_bytes: total, reasoning }, quantization };
}

/**
 * Memory a model needs: weights + f16 KV cache + 10% runtime overhead, with the reasoning in plain words.
 * Throws `invalid_request` for an unknown quantization name, or when neither a parameter count nor a file
 * size is known.
 */
export function estimateMemory(facts: ModelFacts, options?: { quantization?: string; contextLength?: number }): MemoryEstimate {
  return estimate(facts, options).estimate;
}

/** Free bytes of the GPU with the most free memory (total − used), or 0 without GPUs. */
export function largestFreeGpu(gpus: GpuInfo[]): { gpu?: GpuInfo; freeBytes: number } {
  let best: { gpu?: GpuInfo; freeBytes: number } = { freeBytes: 0 };
  for (const gpu of gpus) {
    const free = Math.max(0, gpu.memory_total_bytes - gpu.memory_used_bytes);
    if (best.gpu === undefined || free > best.freeBytes) best = { gpu, freeBytes: free };
  }
  return best;
}

/**
 * Whether an estimate fits this machine: on the GPU with the most free memory if it fits in 90% of it, else
 * in 90% of the system's free memory (CPU), else not at all. When it does not fit, the reasoning says by how
 * much, and, given the model's facts (and the context length the estimate used), which smaller quantization
 * would; without facts, which one would if the weights are most of the memory.
 */
export function checkCompatibility(
  estimate: MemoryEstimate,
  machine: MachineMemory,
  facts?: ModelFacts,
  options?: { contextLength?: number },
): Compatibility {
  const need = estimate.estimated_bytes;
  const { gpu, freeBytes: gpuFree } = largestFreeGpu(machine.gpus);
  const gpuUsable = USABLE_FRACTION * gpuFree;
  const cpuFree = Math.max(0, machine.freeBytes);
  const cpuUsable = USABLE_FRACTION * cpuFree;
  const gpuText = gpu
    ? `the GPU with the most free memory (${gpu.name}) has ${formatGB(gpuFree)} free, ${USABLE_FRACTION * 100}% of it is ${formatGB(gpuUsable)}`
    : 'no GPU was found';
  const cpuText = `system memory has ${formatGB(cpuFree)} free of ${formatGB(machine.totalBytes)}, ${USABLE_FRACTION * 100}% of it is ${formatGB(cpuUsable)}`;
  const base = estimate.reasoning;

  if (gpu && need <= gpuUsable) {
    return {
      ...estimate,
      compatible: true,
      available_bytes: gpuFree,
      device: 'gpu',
      reasoning: `${base} It fits on the GPU: ${gpuText}.`,
    };
  }
  if (need <= cpuUsable) {
    const split = gpu ? ' (a runtime like Ollama may also split its layers between the GPU and the CPU)' : '';
    return {
      ...estimate,
      compatible: true,
      available_bytes: cpuFree,
      device: 'cpu',
      reasoning: `${base} ${gpu ? `It does not fit on the GPU (${gpuText}) but` : `${capitalize(gpuText)}; it`} fits in system memory on the CPU${split}: ${cpuText}.`,
    };
  }

  const available = Math.max(gpuFree, cpuFree);
  const usable = USABLE_FRACTION * available;
  const short = need - usable;
  const suggestion = suggest(estimate, { gpu: gpu ? gpuUsable : 0, cpu: cpuUsable }, facts, options);
  return {
    ...estimate,
    compatible: false,
    available_bytes: available,
    device: 'cpu',
    reasoning: `${base} It does not fit: ${gpuText}; ${cpuText}. It is short by ≈ ${formatGB(short)}. ${suggestion}`,
  };
}

/** Which smaller quantization would fit `usable` bytes, computed from the facts when given. */
function suggest(
  estimate: MemoryEstimate,
  usable: { gpu: number; cpu: number },
  facts?: ModelFacts,
  options?: { contextLength?: number },
): string {
  const where = (bytes: number): string | undefined =>
    bytes <= usable.gpu ? 'on the GPU' : bytes <= usable.cpu ? 'in system memory' : undefined;
  const currentBits = BITS_PER_WEIGHT[normalizeQuantization(estimate.quantization)];
  const smaller = SUGGESTION_LADDER.filter((q) => currentBits === undefined || BITS_PER_WEIGHT[q] < currentBits);
  const fallback = 'Try a smaller model, a shorter context, or free some memory.';

  if (facts) {
    let smallest: Breakdown | undefined;
    for (const quantization of smaller) {
      let candidate: Breakdown;
      try {
        candidate = estimateFor(facts, quantization, options);
      } catch {
        continue;
      }
      smallest = candidate;
      const fits = where(candidate.estimate.estimated_bytes);
      if (fits) return `At ${quantization} it would need ≈ ${formatGB(candidate.estimate.estimated_bytes)}, which fits ${fits}.`;
    }
    if (smallest) {
      return `Even at ${smallest.quantization} it would need ≈ ${formatGB(smallest.estimate.estimated_bytes)}. ${fallback}`;
    }
    return fallback;
  }

  if (currentBits === undefined) return fallback;
  // Without the facts, scale the whole estimate by bits per weight: right when the weights dominate, optimistic otherwise.
  for (const quantization of smaller) {
    const scaled = (estimate.estimated_bytes * BITS_PER_WEIGHT[quantization]) / currentBits;
    const fits = where(scaled);
    if (fits) {
      return `At ${quantization} (≈${formatBits(BITS_PER_WEIGHT[quantization])} bits/weight) it would need roughly ${formatGB(scaled)}, which fits ${fits} if the weights are most of the memory.`;
    }
  }
  return `Even the smallest common quantization (${SUGGESTION_LADDER.at(-1)}) would not fit. ${fallback}`;
}

function estimateFor(facts: ModelFacts, quantization: string, options?: { contextLength?: number }): Breakdown {
  return estimate(facts, { quantization, ...(options?.contextLength !== undefined ? { contextLength: options.contextLength } : {}) });
}
