import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AppError } from '../src/errors.ts';
import { checkCompatibility } from '../src/engine/inference/compatibility.ts';
import { estimateMemory, type MachineMemory, type MemoryEstimate, type ModelFacts } from '../src/engine/inference/memory.ts';
import { BITS_PER_WEIGHT, parseParameterCount, parseQuantization } from '../src/engine/inference/quantization.ts';
import { RECIPES } from '../src/engine/inference/recipes.ts';
import { modelRequests } from '../src/protocol/requests/models.ts';
import { serverParams, systemRequests } from '../src/protocol/requests/system.ts';

function throwsCode(fn: () => unknown, code: string, message?: RegExp): AppError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, AppError);
    const appError = error as AppError;
    assert.is(appError.code, code);
    if (message) assert.match(appError.message, message);
    return appError;
  }
  assert.unreachable('expected an AppError');
  throw new Error('unreachable');
}

const GB = 1e9;
const GiB = 2 ** 30;

// ---------------------------------------------------------------------------------------------------------------

const names = suite('parseParameterCount and parseQuantization');

names('reads parameter counts from Ollama size labels', () => {
  assert.is(parseParameterCount('8.0B'), 8e9);
  assert.is(parseParameterCount('3.2B'), 3.2e9);
  assert.is(parseParameterCount('350M'), 350e6);
  assert.is(parseParameterCount('1.5b'), 1.5e9);
  assert.is(parseParameterCount('494.03M'), 494.03e6);
});

names('reads parameter counts from Ollama tags and HF file names, ignoring version numbers', () => {
  assert.is(parseParameterCount('llama3.2:3b'), 3e9);
  assert.is(parseParameterCount('llama3.1:8b-instruct-q4_K_M'), 8e9);
  assert.is(parseParameterCount('qwen2.5-7b-instruct-q4_K_M'), 7e9);
  assert.is(parseParameterCount('deepseek-r1:1.5b'), 1.5e9);
  assert.is(parseParameterCount('gemma3:270m'), 270e6);
  assert.is(parseParameterCount('Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf'), 8e9);
  assert.is(parseParameterCount('Llama-3.2-3B-Instruct-IQ4_XS.gguf'), 3e9);
  assert.is(parseParameterCount('gemma-2-2b-it-Q8_0.gguf'), 2e9);
  assert.is(parseParameterCount('SmolLM2-135M-Instruct-Q8_0.gguf'), 135e6);
  assert.is(parseParameterCount('Qwen_Qwen3-8B-Q4_K_M.gguf'), 8e9);
});

names('multiplies out mixture-of-experts names and prefers the total over the active count', () => {
  assert.is(parseParameterCount('mixtral:8x7b'), 56e9);
  assert.is(parseParameterCount('Mixtral-8x22B-Instruct-v0.1.Q4_K_M.gguf'), 176e9);
  assert.is(parseParameterCount('qwen3:30b-a3b'), 30e9);
});

names('finds no parameter count where a name states none', () => {
  assert.is(parseParameterCount('nomic-embed-text'), undefined);
  assert.is(parseParameterCount('nomic-embed-text:v1.5'), undefined);
  assert.is(parseParameterCount('llama3.2:latest'), undefined);
  assert.is(parseParameterCount('Phi-3-mini-4k-instruct-q4.gguf'), undefined);
  assert.is(parseParameterCount('Q4_K_M'), undefined);
});

names('finds quantizations in tags and file names, normalized to upper case', () => {
  assert.is(parseQuantization('llama3.1:8b-instruct-q4_K_M'), 'Q4_K_M');
  assert.is(parseQuantization('llama3.2:3b-instruct-q8_0'), 'Q8_0');
  assert.is(parseQuantization('qwen2.5:7b-instruct-fp16'), 'F16');
  assert.is(parseQuantization('Meta-Llama-3-8B-Instruct.Q8_0.gguf'), 'Q8_0');
  assert.is(parseQuantization('llama-2-7b.Q5_K_S.gguf'), 'Q5_K_S');
  assert.is(parseQuantization('Llama-3.2-3B-Instruct-IQ4_XS.gguf'), 'IQ4_XS');
  assert.is(parseQuantization('Qwen2.5-7B-Instruct-IQ3_XXS.gguf'), 'IQ3_XXS');
  assert.is(parseQuantization('model-bf16.gguf'), 'BF16');
  assert.is(parseQuantization('Mistral-7B-Instruct-v0.3.f16.gguf'), 'F16');
  assert.is(parseQuantization('qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf'), 'Q4_K_M');
  assert.is(parseQuantization('gpt-oss:20b-mxfp4'), 'MXFP4');
  assert.is(parseQuantization('q4_k'), 'Q4_K_M', "llama.cpp's alias");
});

names('finds no quantization in names without one', () => {
  assert.is(parseQuantization('llama3.2:3b'), undefined);
  assert.is(parseQuantization('qwen2.5:0.5b'), undefined);
  assert.is(parseQuantization('qwen3:8b'), undefined);
  assert.is(parseQuantization('nomic-embed-text:v1.5'), undefined);
});

names('every parsed quantization of the test names is in the bits-per-weight table', () => {
  for (const name of ['q4_K_M', 'Q8_0', 'fp16', 'f16', 'bf16', 'IQ4_XS', 'q5_k_m', 'Q6_K', 'q2_K', 'iq2_xxs', 'q4_0']) {
    const quantization = parseQuantization(`model-${name}.gguf`);
    assert.ok(quantization && quantization in BITS_PER_WEIGHT, `${name} → ${quantization}`);
  }
});

names('the table holds the exact block sizes of the single-format types', () => {
  assert.is(BITS_PER_WEIGHT.F16, 16);
  assert.is(BITS_PER_WEIGHT.Q8_0, (34 * 8) / 32);
  assert.is(BITS_PER_WEIGHT.Q6_K, (210 * 8) / 256);
  assert.is(BITS_PER_WEIGHT.Q4_0, (18 * 8) / 32);
  assert.is(BITS_PER_WEIGHT.IQ4_XS, (136 * 8) / 256);
  const ladder = ['F32', 'F16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K', 'IQ2_XXS', 'IQ1_S'];
  for (let i = 1; i < ladder.length; i++) assert.ok(BITS_PER_WEIGHT[ladder[i]] < BITS_PER_WEIGHT[ladder[i - 1]], ladder[i]);
});

names.run();

// ---------------------------------------------------------------------------------------------------------------

const estimates = suite('estimateMemory');

estimates('adds weights, an f16 KV cache and 10% overhead, exactly, for a constructed model', () => {
  const facts: ModelFacts = { model: 'toy:1b', parameterCount: 1e9, quantization: 'Q8_0', layers: 10, embeddingLength: 1000 };
  const result = estimateMemory(facts, { contextLength: 1000 });
  // weights 1e9 × 8.5 / 8 = 1,062,500,000; KV 2 × 10 × 1000 × 1000 × 2 = 40,000,000; × 1.1 = 1,212,750,000
  assert.is(result.estimated_bytes, 1_212_750_000);
  assert.is(result.quantization, 'Q8_0');
  assert.is(result.model, 'toy:1b');
  assert.match(result.reasoning, '1.00 B parameters at Q8_0 (≈8.5 bits/weight) ≈ 1.06 GB of weights');
  assert.match(result.reasoning, 'KV cache for 1000 tokens');
  assert.match(result.reasoning, '10 layers × 1000 dims');
  assert.match(result.reasoning, 'upper bound');
  assert.match(result.reasoning, 'overhead 10%');
  assert.match(result.reasoning, '1.21 GB');
  systemRequests.estimate_memory.output.parse(result);
});

estimates('scales the KV cache by KV heads / heads for grouped-query attention (Llama 3.1 8B)', () => {
  const facts: ModelFacts = {
    model: 'llama3.1:8b',
    quantization: 'Q4_K_M',
    parameterCount: 8_030_261_248,
    contextLength: 131_072,
    layers: 32,
    embeddingLength: 4096,
    headCount: 32,
    headCountKv: 8,
  };
  const result = estimateMemory(facts);
  const weights = (8_030_261_248 * 4.84) / 8;
  const kv = (2 * 32 * 4096 * 4096 * 2) / 4; // 4096 tokens by default, not the 131072 trained
  assert.is(result.estimated_bytes, Math.round((weights + kv) * 1.1));
  assert.match(result.reasoning, '8.03 B parameters at Q4_K_M (≈4.84 bits/weight) ≈ 4.86 GB of weights');
  assert.match(result.reasoning, '≈ 0.54 GB');
  assert.match(result.reasoning, '8/32 KV heads');
  assert.match(result.reasoning, 'trained for 131072');
  assert.match(result.reasoning, '→ ≈ 5.93 GB');
});

estimates('a requested context length replaces the default; a short trained context caps it', () => {
  const facts: ModelFacts = { model: 'm', parameterCount: 1e9, quantization: 'F16', layers: 2, embeddingLength: 100 };
  const at8k = estimateMemory(facts, { contextLength: 8192 });
  assert.is(at8k.estimated_bytes, Math.round((2e9 + 2 * 2 * 100 * 8192 * 2) * 1.1));
  const short = estimateMemory({ ...facts, contextLength: 2048 });
  assert.is(short.estimated_bytes, Math.round((2e9 + 2 * 2 * 100 * 2048 * 2) * 1.1));
  assert.match(short.reasoning, "2048 tokens (the model's trained context)");
  throwsCode(() => estimateMemory(facts, { contextLength: 0 }), 'invalid_request');
});

estimates('without layer facts uses the rough per-billion-parameter KV rule and says so', () => {
  const result = estimateMemory({ model: 'some-model:2b', quantization: 'Q4_0', parameterCount: 2e9 });
  // weights 2e9 × 4.5 / 8 = 1,125,000,000; KV 80,000 × 2 × 4096 = 655,360,000
  assert.is(result.estimated_bytes, Math.round((1_125_000_000 + 655_360_000) * 1.1));
  assert.match(result.reasoning, 'rough');
  assert.match(result.reasoning, '80,000 bytes per token per billion');
  assert.match(result.reasoning, 'upper bound');
});

estimates('uses the reported file size when no other quantization is asked for, and says so', () => {
  const facts: ModelFacts = {
    model: 'llama3.2:3b',
    quantization: 'Q4_K_M',
    parameterCount: 3.21e9,
    sizeBytes: 2_019_393_189,
    layers: 28,
    embeddingLength: 3072,
    headCount: 24,
    headCountKv: 8,
  };
  const kv = (2 * 28 * 3072 * 4096 * 2 * 8) / 24;
  const own = estimateMemory(facts);
  assert.is(own.estimated_bytes, Math.round((2_019_393_189 + kv) * 1.1));
  assert.is(own.quantization, 'Q4_K_M');
  assert.match(own.reasoning, 'weights file is 2.02 GB at Q4_K_M');
  assert.equal(estimateMemory(facts, { quantization: 'q4_k_m' }), own, 'the same quantization, differently spelt');

  const q8 = estimateMemory(facts, { quantization: 'q8_0' });
  assert.is(q8.quantization, 'Q8_0');
  assert.is(q8.estimated_bytes, Math.round(((3.21e9 * 8.5) / 8 + kv) * 1.1));
  assert.match(q8.reasoning, '3.21 B parameters at Q8_0');
});

estimates('infers the parameter count from the file size to rescale to another quantization', () => {
  const result = estimateMemory(
    { model: 'custom', quantization: 'Q4_0', sizeBytes: 4.5e9, layers: 1, embeddingLength: 1 },
    { quantization: 'F16' },
  );
  // 4.5e9 bytes × 8 / 4.5 bits = 8e9 parameters → 16e9 bytes at F16
  assert.is(result.estimated_bytes, Math.round((16e9 + 2 * 1 * 1 * 4096 * 2) * 1.1));
  assert.match(result.reasoning, 'inferred from the 4.50 GB file at Q4_0');
});

estimates('falls back to the name for the parameter count and quantization', () => {
  const result = estimateMemory({ model: 'qwen2.5:7b-instruct-q8_0' });
  assert.is(result.quantization, 'Q8_0');
  assert.match(result.reasoning, 'read from the name');
  assert.ok(result.estimated_bytes > (7e9 * 8.5) / 8);
});

estimates('assumes Q4_K_M when the quantization is unknown, and says so', () => {
  const result = estimateMemory({ model: 'llama3.2:3b', parameterCount: 3e9 });
  assert.is(result.quantization, 'Q4_K_M');
  assert.match(result.reasoning, 'Q4_K_M');
  assert.match(result.reasoning, 'assumed');
  const exotic = estimateMemory({ model: 'x', quantization: 'Q4_K_XL', parameterCount: 3e9 });
  assert.is(exotic.quantization, 'Q4_K_M');
  assert.match(exotic.reasoning, 'not in the table');
});

estimates('says a mixture-of-experts count read from the name is an upper bound', () => {
  const result = estimateMemory({ model: 'mixtral:8x7b', quantization: 'Q4_0' });
  assert.match(result.reasoning, '56.00 B parameters');
  assert.match(result.reasoning, 'mixture of experts');
  assert.match(result.reasoning, 'upper bound');
});

estimates('an unknown quantization is invalid_request listing the known ones', () => {
  const error = throwsCode(() => estimateMemory({ model: 'm', parameterCount: 1e9 }, { quantization: 'Q7_Z' }), 'invalid_request', /Q7_Z/);
  assert.match(error.message, 'Q4_K_M');
  assert.match(error.message, 'IQ4_XS');
  assert.match(error.message, 'F16');
});

estimates('no parameter count and no size is invalid_request saying what is missing', () => {
  const error = throwsCode(() => estimateMemory({ model: 'mystery-model' }), 'invalid_request', /parameter count/);
  assert.match(error.message, 'mystery-model');
  assert.match(error.message, 'file size');
  // A size without a known quantization cannot be rescaled to another one.
  throwsCode(() => estimateMemory({ model: 'mystery-model', sizeBytes: 1e9 }, { quantization: 'Q8_0' }), 'invalid_request', /rescaled/);
  // ...but it is itself an estimate of the weights.
  assert.is(estimateMemory({ model: 'mystery-model', sizeBytes: 1e9 }).quantization, 'unknown');
});

estimates.run();

// ---------------------------------------------------------------------------------------------------------------

const compatibility = suite('checkCompatibility');

const sixGB: MemoryEstimate = { model: 'm', quantization: 'Q4_K_M', estimated_bytes: 6e9, reasoning: 'Six GB.' };

function machine(freeBytes: number, gpus: Array<[string, number, number]> = []): MachineMemory {
  return {
    totalBytes: 32 * GB,
    freeBytes,
    gpus: gpus.map(([name, total, used]) => ({ name, memory_total_bytes: total, memory_used_bytes: used })),
  };
}

compatibility('picks the GPU with the most free memory when the estimate fits in 90% of it', () => {
  const result = checkCompatibility(sixGB, machine(16 * GB, [['small', 8 * GiB, 7 * GiB], ['big', 24 * GB, 2 * GB]]));
  assert.is(result.device, 'gpu');
  assert.is(result.compatible, true);
  assert.is(result.available_bytes, 22 * GB);
  assert.match(result.reasoning, 'big');
  assert.match(result.reasoning, '22.00 GB free');
  assert.match(result.reasoning, '19.80 GB');
  assert.is(result.estimated_bytes, 6e9);
  systemRequests.check_compatibility.output.parse(result);
});

compatibility('fits at exactly 90% of free memory, not above', () => {
  assert.is(checkCompatibility(sixGB, machine(0, [['g', 10 * GB, 10 * GB - 6e9 / 0.9]])).device, 'gpu');
  const over = checkCompatibility({ ...sixGB, estimated_bytes: 6e9 + 1 }, machine(0, [['g', 10 * GB, 10 * GB - 6e9 / 0.9]]));
  assert.is(over.compatible, false);
});

compatibility('falls back to system memory on the CPU when the GPU is too small', () => {
  const result = checkCompatibility(sixGB, machine(16 * GB, [['small', 8 * GB, 3 * GB]]));
  assert.is(result.device, 'cpu');
  assert.is(result.compatible, true);
  assert.is(result.available_bytes, 16 * GB);
  assert.match(result.reasoning, 'does not fit on the GPU');
  assert.match(result.reasoning, '16.00 GB free');
});

compatibility('runs on the CPU when there is no GPU', () => {
  const result = checkCompatibility(sixGB, machine(8 * GB));
  assert.is(result.device, 'cpu');
  assert.is(result.compatible, true);
  assert.match(result.reasoning, 'No GPU was found');
});

compatibility('is incompatible when neither fits: says by how much and which computed quantization would', () => {
  const facts: ModelFacts = {
    model: 'llama3.1:8b',
    quantization: 'Q4_K_M',
    parameterCount: 8_030_261_248,
    layers: 32,
    embeddingLength: 4096,
    headCount: 32,
    headCountKv: 8,
  };
  const f16 = estimateMemory(facts, { quantization: 'F16' });
  const box = machine(9 * GB, [['gpu', 12 * GB, 4 * GB]]);
  const result = checkCompatibility(f16, box, facts);
  assert.is(result.compatible, false);
  assert.is(result.device, 'cpu');
  assert.is(result.available_bytes, 9 * GB, 'the larger of GPU (8 GB) and system (9 GB) free memory');
  const short = f16.estimated_bytes - 0.9 * 9 * GB;
  assert.match(result.reasoning, `short by ≈ ${(short / 1e9).toFixed(2)} GB`);

  // The suggestion is the largest common quantization whose own estimate fits.
  const suggested = /At (\w+) it would need ≈ ([\d.]+) GB, which fits (on the GPU|in system memory)/.exec(result.reasoning);
  assert.ok(suggested, result.reasoning);
  assert.is(suggested[1], 'Q6_K');
  const q6 = estimateMemory(facts, { quantization: 'Q6_K' });
  assert.is(suggested[2], (q6.estimated_bytes / 1e9).toFixed(2));
  assert.ok(q6.estimated_bytes <= 0.9 * 9 * GB);
  assert.ok(estimateMemory(facts, { quantization: 'Q8_0' }).estimated_bytes > 0.9 * 9 * GB, 'the next larger does not fit');
});

compatibility('without facts, suggests a quantization by scaling, and says it is rough', () => {
  const result = checkCompatibility({ ...sixGB, quantization: 'Q8_0', estimated_bytes: 10 * GB }, machine(7 * GB));
  assert.is(result.compatible, false);
  // 10 GB × 5.68 / 8.5 ≈ 6.68 GB > 6.3 GB; × 4.84 / 8.5 ≈ 5.69 GB fits.
  assert.match(result.reasoning, 'At Q4_K_M');
  assert.match(result.reasoning, 'if the weights are most of the memory');
});

compatibility('when nothing would fit, says so and what else to try', () => {
  const facts: ModelFacts = { model: 'llama3.1:405b', parameterCount: 405e9, quantization: 'Q4_K_M' };
  const result = checkCompatibility(estimateMemory(facts), machine(16 * GB, [['g', 24 * GB, 0]]), facts);
  assert.is(result.compatible, false);
  assert.is(result.available_bytes, 24 * GB);
  assert.match(result.reasoning, 'Even at Q2_K');
  assert.match(result.reasoning, 'smaller model');
});

compatibility.run();

// ---------------------------------------------------------------------------------------------------------------

const recipes = suite('RECIPES');

recipes('holds 8–10 recipes with unique ids and the get_recipes output shape', () => {
  assert.ok(RECIPES.length >= 8 && RECIPES.length <= 10, String(RECIPES.length));
  assert.is(new Set(RECIPES.map((r) => r.id)).size, RECIPES.length);
  modelRequests.get_recipes.output.parse({ recipes: RECIPES });
});

recipes("every recipe's settings validate against serverParams", () => {
  for (const recipe of RECIPES) {
    const parsed = serverParams.safeParse(recipe.settings);
    assert.ok(parsed.success, `${recipe.id}: ${parsed.error?.message}`);
  }
});

recipes('every model names an Ollama-style tag; sizes in tags read as parameter counts', () => {
  const tag = /^[a-z0-9][a-z0-9._-]*(?:\/[a-z0-9][a-z0-9._-]*)?(?::[a-z0-9][a-z0-9._-]*)?$/;
  for (const recipe of RECIPES) {
    assert.match(recipe.model, tag, recipe.id);
    assert.ok(recipe.name.length > 0 && recipe.description.length > 0, recipe.id);
    const size = recipe.model.split(':')[1];
    if (size) assert.ok(parseParameterCount(size), `${recipe.id}: ${size}`);
  }
});

recipes('covers the tasks: chat, low memory, coding, summarization, extraction, creative, RAG, embeddings, reasoning', () => {
  const ids = RECIPES.map((r) => r.id);
  for (const id of ['everyday-chat', 'low-memory', 'coding', 'summarization', 'extraction', 'creative-writing', 'rag-answering', 'embeddings', 'reasoning']) {
    assert.ok(ids.includes(id), id);
  }
  const byId = Object.fromEntries(RECIPES.map((r) => [r.id, r]));
  assert.equal(byId.embeddings.settings, {});
  assert.is(byId.extraction.settings.temperature, 0);
  assert.type(byId.extraction.settings.seed, 'number');
  assert.is(byId.summarization.settings.max_tokens, 512);
  assert.ok((byId.coding.settings.temperature ?? 1) <= 0.3);
  assert.is(byId.reasoning.settings.temperature, 0.6);
  assert.is(byId.reasoning.settings.top_p, 0.95);
  assert.match(byId['rag-answering'].settings.system_prompt ?? '', 'context');
});

recipes.run();
