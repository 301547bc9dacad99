/** `check_compatibility`: whether an estimate fits this machine's GPU or memory, and what would fit if not. No I/O. */
import type { GpuInfo } from '../machine.ts';
import {
  capitalize,
  estimateFor,
  formatBits,
  formatGB,
  USABLE_FRACTION,
  type Breakdown,
  type MachineMemory,
  type MemoryEstimate,
  type ModelFacts,
} from './memory.ts';
import { BITS_PER_WEIGHT, normalizeQuantization } from './quantization.ts';

/** What a suggestion may step down to: the common quantizations, largest first. */
const SUGGESTION_LADDER = ['F16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K'];

export type Compatibility = MemoryEstimate & { compatible: boolean; available_bytes: number; device: 'cpu' | 'gpu' };

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

