/**
 * Small named values the server keeps (server params, the default model, per-model inference settings).
 * The store provides them persistently; without a store (a library user's choice, and most tests) they live in memory.
 */
export interface Settings {
  getSetting<T>(key: string): Promise<T | undefined>;
  setSetting(key: string, value: unknown): Promise<void>;
}

export function memorySettings(): Settings {
  const values = new Map<string, unknown>();
  return {
    getSetting: async <T>(key: string) => structuredClone(values.get(key)) as T | undefined,
    setSetting: async (key, value) => {
      values.set(key, structuredClone(value));
    },
  };
}
