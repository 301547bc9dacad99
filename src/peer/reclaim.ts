import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * A closed wrtc peer keeps its native threads until V8 collects its JS object; under churn that is hundreds of
 * idle threads. So after peers close, ask for one collection, debounced. Best effort: where the runtime does not
 * allow exposing `gc` (or under Deno), nothing happens and the threads go at the next natural collection.
 */
const DEBOUNCE_MS = 1_000;

let collect: (() => void) | null | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) return (collect = exposed);
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  } catch {
    collect = null;
  }
  return collect;
}

export function reclaimClosedPeers(): void {
  if (timer) clearTimeout(timer);
  timer = setTimeout(() => {
    timer = undefined;
    collector()?.();
  }, DEBOUNCE_MS);
  timer.unref?.();
}
