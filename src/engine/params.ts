import type { Handlers } from '../protocol/handlers.ts';
import type { ServerParams } from '../protocol/requests/system.ts';
import { SHARED, type Settings } from './settings.ts';

/** The server-wide generation parameters, read by `get_params` and by the inference engine as defaults. */
export interface ParamsStore {
  get(): Promise<ServerParams>;
  set(params: ServerParams): Promise<void>;
}

const KEY = 'server_params';

export function paramsStore(settings: Settings): ParamsStore {
  return {
    get: async () => (await settings.getSetting<ServerParams>(SHARED, KEY)) ?? {},
    set: (params) => settings.setSetting(SHARED, KEY, params),
  };
}

/** Shared by every caller (only an admin may set them); writes are serialized so concurrent merges never lose a field. */
export function paramsHandlers(store: ParamsStore) {
  let writes = Promise.resolve();
  return {
    get_params: async () => ({ params: await store.get() }),
    set_params: ({ params, replace }) => {
      const write = writes.then(async () => {
        const next = replace ? params : { ...(await store.get()), ...params };
        await store.set(next);
        return { params: next };
      });
      writes = write.then(
        () => undefined,
        () => undefined,
      );
      return write;
    },
  } satisfies Partial<Handlers>;
}
