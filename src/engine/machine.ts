import { execFile } from 'node:child_process';
import os from 'node:os';

export interface GpuInfo {
  name: string;
  memory_total_bytes: number;
  memory_used_bytes: number;
  driver?: string;
}

const MiB = 1024 * 1024;
const GPU_QUERY_TIMEOUT_MS = 2000;
const GPU_CACHE_MS = 5000;

let gpuCache: { at: number; gpus: Promise<GpuInfo[]> } | undefined;

/** GPUs as `nvidia-smi` reports them; none when it is absent or fails. Cached briefly: it takes ~50 ms a call. */
export function gpus(): Promise<GpuInfo[]> {
  if (!gpuCache || Date.now() - gpuCache.at > GPU_CACHE_MS) gpuCache = { at: Date.now(), gpus: queryNvidiaSmi() };
  return gpuCache.gpus;
}

function queryNvidiaSmi(): Promise<GpuInfo[]> {
  const args = ['--query-gpu=name,memory.total,memory.used,driver_version', '--format=csv,noheader,nounits'];
  return new Promise((resolve) => {
    execFile('nvidia-smi', args, { timeout: GPU_QUERY_TIMEOUT_MS }, (error, stdout) => {
      resolve(error ? [] : parseNvidiaSmi(String(stdout)));
    });
  });
}

/** Parses `name, total MiB, used MiB, driver` lines. */
export function parseNvidiaSmi(csv: string): GpuInfo[] {
  return csv
    .split('\n')
    .map((line) => line.split(',').map((field) => field.trim()))
    .filter((fields) => fields.length >= 3 && fields[0] !== '' && Number.isFinite(Number(fields[1])))
    .map(([name, total, used, driver]) => ({
      name,
      memory_total_bytes: Number(total) * MiB,
      memory_used_bytes: (Number(used) || 0) * MiB,
      ...(driver ? { driver } : {}),
    }));
}

export function runtime(): { name: string; version: string } {
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  return deno ? { name: 'deno', version: deno.version.deno } : { name: 'node', version: process.versions.node };
}

export function cpu(): { model: string; cores: number } {
  const cpus = os.cpus();
  return { model: cpus[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism?.() ?? cpus.length };
}

export function memory(): { total_bytes: number; free_bytes: number } {
  return { total_bytes: os.totalmem(), free_bytes: os.freemem() };
}
