/**
 * What a GGUF file's header says about its model, in the terms `list_models`, `model_info` and the memory
 * estimates use. Pure functions over node-llama-cpp's parsed header; the enums come from the module as loaded.
 */
import type { GgufFileInfo } from 'node-llama-cpp';
import type { ModelFacts } from '../memory.ts';
import type { LlamaModule } from './runtime.ts';

export interface GgufDescription {
  architecture: string;
  name?: string;
  parameterCount: number;
  /** `Q4_K_M`, `F16`...: the file type the header states, else the type most of the weights' bytes are in. */
  quantization: string;
  contextLength?: number;
  embeddingLength?: number;
  layers?: number;
  headCount?: number;
  headCountKv?: number;
  hasChatTemplate: boolean;
  /** Encoder-only models (BERT and kin) only embed; decoders write text and can embed too. */
  capabilities: string[];
}

type Enums = Pick<LlamaModule, 'GgufFileType' | 'GgmlType'>;

const ENCODERS = /^(bert|nomic-bert|nomic-bert-moe|jina-bert-v2|t5encoder|modern-bert|neo-bert|eurobert)$/;

export function describeGguf(info: GgufFileInfo, enums: Enums): GgufDescription {
  const general = info.metadata.general;
  const architecture = String(general.architecture);
  const shape = (info.architectureMetadata ?? {}) as {
    context_length?: number;
    embedding_length?: number;
    block_count?: number;
    attention?: { head_count?: number | number[]; head_count_kv?: number | number[] };
  };
  const tokenizer = info.metadata.tokenizer as { chat_template?: string } | undefined;
  return {
    architecture,
    ...(general.name ? { name: String(general.name) } : {}),
    parameterCount: parameterCount(info),
    quantization: quantization(info, enums),
    ...numberField('contextLength', shape.context_length),
    ...numberField('embeddingLength', shape.embedding_length),
    ...numberField('layers', shape.block_count),
    ...numberField('headCount', first(shape.attention?.head_count)),
    ...numberField('headCountKv', first(shape.attention?.head_count_kv)),
    hasChatTemplate: typeof tokenizer?.chat_template === 'string',
    capabilities: ENCODERS.test(architecture) ? ['embedding'] : ['completion', 'embedding'],
  };
}

const tensorsOf = (info: GgufFileInfo) => info.fullTensorInfo ?? info.tensorInfo ?? [];
const weightsIn = (tensor: { dimensions: readonly (number | bigint)[] }) =>
  tensor.dimensions.reduce<number>((product, dimension) => product * Number(dimension), 1);

/** The count of weights, from the tensors' shapes (exact), whatever the header's optional count says. */
function parameterCount(info: GgufFileInfo): number {
  return tensorsOf(info).reduce((total, tensor) => total + weightsIn(tensor), 0);
}

function quantization(info: GgufFileInfo, { GgufFileType, GgmlType }: Enums): string {
  const fileType = info.metadata.general.file_type;
  if (fileType !== undefined && GgufFileType[fileType]) return GgufFileType[fileType].replace(/^(MOSTLY|ALL)_/, '');
  // No file type in the header (older converters): name the tensor type that holds the most weights.
  const weights = new Map<number, number>();
  for (const tensor of tensorsOf(info)) weights.set(tensor.ggmlType, (weights.get(tensor.ggmlType) ?? 0) + weightsIn(tensor));
  const [most] = [...weights.entries()].sort((a, b) => b[1] - a[1]);
  return most ? (GgmlType[most[0]] ?? 'unknown') : 'unknown';
}

/** `260K`, `1.2B`: the short form Ollama's `parameter_size` uses. */
export function formatParameterCount(count: number): string {
  for (const [unit, size] of [['T', 1e12], ['B', 1e9], ['M', 1e6], ['K', 1e3]] as const) {
    if (count >= size) return `${Number((count / size).toFixed(count >= 10 * size ? 0 : 1))}${unit}`;
  }
  return String(count);
}

export function factsOf(model: string, description: GgufDescription, sizeBytes: number): ModelFacts {
  return {
    model,
    quantization: description.quantization,
    parameterCount: description.parameterCount,
    sizeBytes,
    contextLength: description.contextLength,
    layers: description.layers,
    embeddingLength: description.embeddingLength,
    headCount: description.headCount,
    headCountKv: description.headCountKv,
  };
}

/** Per-layer values (some architectures vary heads by layer) are summarised by the first. */
function first(value: number | number[] | undefined): number | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function numberField<K extends string>(key: K, value: unknown): { [P in K]?: number } {
  return (typeof value === 'number' && Number.isFinite(value) ? { [key]: value } : {}) as { [P in K]?: number };
}
