import type { Handlers } from '../dispatch.ts';
import type { ServerParams } from '../protocol/requests/system.ts';

/** Where server-wide parameters live; in memory until a persistent store is attached. */
export interface ParamsStore {
  get(): ServerParams | Promise<ServerParams>;
  set(params: ServerParams): void | Promise<void>;
}

export function memoryParamsStore(initial: ServerParams = {}): ParamsStore {
  let current = { ...initial };
  return {
    get: () => current,
    set: (params) => {
      current = params;
    },
  };
}

/** Shared by all sessions; writes are serialized so concurrent merges never lose a field. */
export function paramsHandlers(store: ParamsStore): Pick<Handlers, 'get_params' | 'set_params'> {
  let writes = Promise.resolve();
  return {
    get_params: async () => ({ params: await store.get() }),
    set_params: ({ params, replace }) => {
      const write = writes.then(async () => {
        const next = replace ? params : { ...(await store.get()), ...params };
        await store.set(next);
        return { params: next };
      });
      writes = write.then(() => undefined, () => undefined);
      return write;
    },
  };
}
