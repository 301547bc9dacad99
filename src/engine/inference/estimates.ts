import type { Handlers } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import { gpus, memory } from '../machine.ts';
import type { InferenceDeps } from './context.ts';
import { checkCompatibility } from './compatibility.ts';
import { estimateMemory, type ModelFacts } from './memory.ts';
import { parseParameterCount, parseQuantization } from './quantization.ts';
import { modelInfoNumber, type OllamaModel, type OllamaShow } from './ollama.ts';

/** Memory estimates from what the upstream reports of a model (Ollama), else from its name (`llama3.1:8b-q4_K_M`). */
export function estimateHandlers({ upstream }: InferenceDeps): Pick<Handlers, 'estimate_memory' | 'check_compatibility'> {
  async function factsOf(model: string, signal: AbortSignal): Promise<ModelFacts> {
    const fromName: ModelFacts = { model, parameterCount: parseParameterCount(model), quantization: parseQuantization(model) };
    try {
      if (!(await upstream.resolve()).ollama) return fromName;
      const [show, tags] = await Promise.all([
        (await upstream.request('/api/show', { body: { model }, signal })).json<OllamaShow>(),
        (await upstream.request('/api/tags', { method: 'GET', signal })).json<{ models?: OllamaModel[] }>(),
      ]);
      const info = show.model_info;
      const parameterCount = info?.['general.parameter_count'];
      return {
        model,
        quantization: show.details?.quantization_level ?? fromName.quantization,
        parameterCount: typeof parameterCount === 'number' ? parameterCount : fromName.parameterCount,
        sizeBytes: tags.models?.find((m) => m.name === model || m.name === `${model}:latest`)?.size,
        contextLength: modelInfoNumber(info, 'context_length'),
        layers: modelInfoNumber(info, 'block_count'),
        embeddingLength: modelInfoNumber(info, 'embedding_length'),
        headCount: modelInfoNumber(info, 'attention.head_count'),
        headCountKv: modelInfoNumber(info, 'attention.head_count_kv'),
      };
    } catch (error) {
      // No upstream, or a model it does not have: the name still tells enough to estimate.
      if (error instanceof AppError && (error.code === 'backend_unavailable' || error.code === 'not_found')) return fromName;
      throw error;
    }
  }

  return {
    estimate_memory: async ({ model, quantization }, { signal }) => estimateMemory(await factsOf(model, signal), { quantization }),

    check_compatibility: async ({ model, quantization }, { signal }) => {
      const facts = await factsOf(model, signal);
      const { total_bytes: totalBytes, free_bytes: freeBytes } = memory();
      // The facts let it name a smaller quantization that would fit, when this one does not.
      return checkCompatibility(estimateMemory(facts, { quantization }), { totalBytes, freeBytes, gpus: await gpus() }, facts);
    },
  };
}
