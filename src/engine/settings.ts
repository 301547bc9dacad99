/**
 * Small named values the server keeps, each under an owner: the default model and per-model inference settings
 * under the caller's key id, the server params under `SHARED`. The store provides them persistently; without a
 * store (a library user's choice, and most tests) they live in memory.
 */
export interface Settings {
  getSetting<T>(owner: string, key: string): Promise<T | undefined>;
  setSetting(owner: string, key: string, value: unknown): Promise<void>;
}

/** The owner of the settings every caller shares (no key id can be `*`). */
export const SHARED = '*';

export function memorySettings(): Settings {
  const values = new Map<string, unknown>();
  const slot = (owner: string, key: string) => JSON.stringify([owner, key]);
  return {
    getSetting: async <T>(owner: string, key: string) => structuredClone(values.get(slot(owner, key))) as T | undefined,
    setSetting: async (owner, key, value) => {
      values.set(slot(owner, key), structuredClone(value));
    },
  };
}
