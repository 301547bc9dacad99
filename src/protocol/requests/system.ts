import { z } from 'zod';
import { noParams, request } from '../define.ts';
import { modelId, samplingParams } from './shared.ts';

/** Server-wide generation parameters, shared by every session (`get_params` / `set_params`). */
export const serverParams = z.strictObject({
  ...samplingParams,
  context_length: z.number().int().positive().max(10_000_000).optional(),
  system_prompt: z.string().max(100_000).optional(),
});
export type ServerParams = z.infer<typeof serverParams>;

const gpu = z.object({
  name: z.string(),
  memory_total_bytes: z.number(),
  memory_used_bytes: z.number(),
  driver: z.string().optional(),
});

const latency = z.object({
  count: z.number().int(),
  errors: z.number().int(),
  p50_ms: z.number(),
  p99_ms: z.number(),
  max_ms: z.number(),
});

const inFlight = z.object({ request_id: z.string(), action: z.string(), elapsed_ms: z.number() });

const memoryEstimate = {
  model: z.string(),
  quantization: z.string(),
  estimated_bytes: z.number(),
  reasoning: z.string(),
};

export const controlRequests = {
  stop_generation: request({
    group: 'control',
    summary: 'Cancels the named in-flight request, or, without a target, every in-flight generation of the caller.',
    input: z.strictObject({ target_request_id: z.string().min(1).max(128).optional() }).default({}),
    output: z.object({ stopped: z.array(z.string()) }),
    response: 'generation_stopped',
    kind: 'mutation',
    engine: 'system',
  }),
  halt_status: request({
    group: 'control',
    summary: 'Whether the caller has generations in flight, and which.',
    input: noParams(),
    output: z.object({ generating: z.boolean(), in_flight: z.array(inFlight) }),
    response: 'halt_status',
    kind: 'query',
    engine: 'system',
  }),
  get_params: request({
    group: 'parameters',
    summary: 'The server-wide generation parameters.',
    input: noParams(),
    output: z.object({ params: serverParams }),
    response: 'params',
    kind: 'query',
    engine: 'system',
  }),
  set_params: request({
    group: 'parameters',
    summary: 'Merges into the server-wide generation parameters (`replace: true` replaces them).',
    input: z.strictObject({ params: serverParams, replace: z.boolean().optional() }),
    output: z.object({ params: serverParams }),
    response: 'params',
    kind: 'mutation',
    adminOnly: true,
    engine: 'system',
  }),
};

export const systemRequests = {
  health: request({
    group: 'system',
    summary: 'Liveness: status, version, uptime.',
    input: noParams(),
    output: z.object({ status: z.enum(['ok', 'shutting_down']), version: z.string(), node_id: z.string(), uptime_s: z.number() }),
    response: 'health',
    kind: 'query',
    engine: 'system',
    answersDuringShutdown: true,
  }),
  system_info: request({
    group: 'system',
    summary: 'Platform, runtime, CPU, memory and GPUs (from `nvidia-smi` when present).',
    input: noParams(),
    output: z.object({
      /** The instance that answered (TABAGENT_NODE_ID), among several behind a balancer. */
      node_id: z.string(),
      platform: z.string(),
      arch: z.string(),
      runtime: z.object({ name: z.string(), version: z.string() }),
      cpu: z.object({ model: z.string(), cores: z.number().int() }),
      memory: z.object({ total_bytes: z.number(), free_bytes: z.number() }),
      gpus: z.array(gpu),
    }),
    response: 'system_info',
    kind: 'query',
    engine: 'system',
  }),
  get_stats: request({
    group: 'system',
    summary: 'Sessions, WebRTC peers, requests per action with latencies, bytes and messages moved.',
    input: noParams(),
    output: z.object({
      uptime_s: z.number(),
      sessions: z.object({ active: z.number().int(), created: z.number().int(), by_state: z.record(z.string(), z.number()) }),
      /** `uncollected`: closed peers count until V8 collects them (under wrtc they hold native threads until then). */
      peers: z.object({ open: z.number().int(), uncollected: z.number().int() }),
      requests: z.object({ total: z.number().int(), errors: z.number().int(), by_action: z.record(z.string(), latency) }),
      messages: z.object({ in: z.number().int(), out: z.number().int() }),
      bytes: z.object({ in: z.number().int(), out: z.number().int() }),
    }),
    response: 'stats',
    kind: 'query',
    engine: 'system',
  }),
  get_resources: request({
    group: 'system',
    summary: 'Resource use now: memory, CPU load, GPUs, sessions and requests in flight.',
    input: noParams(),
    output: z.object({
      memory: z.object({
        total_bytes: z.number(),
        free_bytes: z.number(),
        process_rss_bytes: z.number(),
        heap_used_bytes: z.number(),
      }),
      cpu: z.object({ cores: z.number().int(), load_avg: z.array(z.number()), process_cpu_ms: z.number() }),
      gpus: z.array(gpu),
      sessions: z.object({ active: z.number().int(), max: z.number().int() }),
      in_flight_requests: z.number().int(),
    }),
    response: 'resources',
    kind: 'query',
    engine: 'system',
  }),
  estimate_memory: request({
    group: 'system',
    summary: 'Memory a model needs at a quantization, with the reasoning.',
    input: z.strictObject({ model: modelId, quantization: z.string().optional() }),
    output: z.object(memoryEstimate),
    response: 'memory_estimate',
    kind: 'query',
    engine: 'inference',
  }),
  check_compatibility: request({
    group: 'system',
    summary: 'Whether a model fits this machine\'s memory and GPU, with the reasoning.',
    input: z.strictObject({ model: modelId, quantization: z.string().optional() }),
    output: z.object({
      ...memoryEstimate,
      compatible: z.boolean(),
      available_bytes: z.number(),
      device: z.enum(['cpu', 'gpu']),
    }),
    response: 'compatibility',
    kind: 'query',
    engine: 'inference',
  }),
  echo: request({
    group: 'system',
    summary: 'Returns its `data` and binary attachment unchanged: for connectivity and throughput checks.',
    input: z.strictObject({ data: z.unknown().optional() }).default({}),
    output: z.object({ data: z.unknown().optional(), attachment_bytes: z.number().int() }),
    response: 'echo',
    kind: 'mutation',
    engine: 'system',
  }),
};
