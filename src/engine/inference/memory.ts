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
import { BITS_PER_WEIGHT, knownQuantizations, normalizeQuantization, parseParameterCount, parseQuantization } from './quantization.ts';


/** What is known of a model, from the upstream (Ollama's /api/show and /api/tags) or from its name. */
export interface ModelFacts {
  model: string;
  /** e.g. 'Q4_K_M', 'Q8_0', 'F16' (Ollama's details.quantization_level). */
  quantization?: string;
  /** e.g. 8030261248 (Ollama model_info['general.parameter_count']). */
  parameterCount?: number;
  /** The weights file size, when the backend knows it (Ollama, a GGUF file). */
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



const DEFAULT_QUANTIZATION = 'Q4_K_M';
const DEFAULT_CONTEXT_TOKENS = 4096;
const OVERHEAD_FRACTION = 0.1;
/** Fraction of free memory a model may take: the rest is left to the OS, the display and fragmentation. */
export const USABLE_FRACTION = 0.9;
const F16_BYTES = 2;
/**
 * Rough KV-cache rule when the layer count and width are unknown: bytes per token per billion parameters.
 * A 7B model without grouped-query attention (Llama 2 7B: 32 layers × 4096 dims × 2 (K and V) × 2 bytes
 * = 524,288 bytes per token, for 6.74 B parameters) needs ≈ 78,000; rounded up to 80,000. Models with
 * grouped-query attention need 4–8× less, so this is an upper bound.
 */
const ROUGH_KV_BYTES_PER_TOKEN_PER_BILLION = 80_000;

/** Bytes as GB with two decimals (1 GB = 1e9 bytes). */
export function formatGB(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function formatParameters(count: number): string {
  return count >= 1e9 ? `${(count / 1e9).toFixed(2)} B` : `${Math.round(count / 1e6)} M`;
}

export function formatBits(bits: number): string {
  return String(Number(bits.toFixed(4)));
}

function positive(value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
}


export interface Breakdown {
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
    weightsText = `the weights file is ${formatGB(sizeBytes)}${own ? ` at ${own}` : ''}, as the backend reports it`;
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

export function estimateFor(facts: ModelFacts, quantization: string, options?: { contextLength?: number }): Breakdown {
  return estimate(facts, { quantization, ...(options?.contextLength !== undefined ? { contextLength: options.contextLength } : {}) });
}
