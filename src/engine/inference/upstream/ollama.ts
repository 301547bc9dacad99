/** The parts of Ollama's native API answers that we read (https://github.com/ollama/ollama/blob/main/docs/api.md). */
export interface OllamaDetails {
  family?: string;
  parameter_size?: string;
  quantization_level?: string;
}

export interface OllamaModel {
  name: string;
  model?: string;
  size?: number;
  digest?: string;
  details?: OllamaDetails;
}

export interface OllamaShow {
  details?: OllamaDetails;
  model_info?: Record<string, unknown>;
  capabilities?: string[];
  parameters?: string;
  modified_at?: string;
}

export interface OllamaProgress {
  status?: string;
  completed?: number;
  total?: number;
  error?: string;
}

/** `model_info` keys are prefixed by the architecture (`llama.context_length`); finds one whatever the prefix. */
export function modelInfoNumber(info: Record<string, unknown> | undefined, suffix: string): number | undefined {
  if (!info) return undefined;
  const architecture = info['general.architecture'];
  const value = typeof architecture === 'string' ? info[`${architecture}.${suffix}`] : info[suffix];
  return typeof value === 'number' ? value : undefined;
}
