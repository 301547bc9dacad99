import type { Handlers } from '../../protocol/handlers.ts';
import { AppError } from '../../errors.ts';
import { gpus, memory } from '../machine.ts';
import type { InferenceDeps } from './context.ts';
import { checkCompatibility } from './compatibility.ts';
import { estimateMemory, type ModelFacts } from './memory.ts';
import { parseParameterCount, parseQuantization } from './quantization.ts';

/** Memory estimates from what the backend knows of a model (Ollama, a GGUF file), else from its name (`llama3.1:8b-q4_K_M`). */
export function estimateHandlers({ backend }: InferenceDeps) {
  async function factsOf(model: string, signal: AbortSignal): Promise<ModelFacts> {
    const fromName: ModelFacts = { model, parameterCount: parseParameterCount(model), quantization: parseQuantization(model) };
    try {
      const known = await (await backend()).facts(model, signal);
      if (!known) return fromName;
      const defined = Object.fromEntries(Object.entries(known).filter(([, value]) => value !== undefined));
      return { ...fromName, ...defined };
    } catch (error) {
      // No backend, or a model it does not have: the name still tells enough to estimate.
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
  } satisfies Partial<Handlers>;
}
