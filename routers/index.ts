import { router } from './trpc.ts';
import { rpcRouter } from './rpc.ts';
import { webrtcRouter } from './webrtc.ts';

export const appRouter = router({
  webrtc: webrtcRouter,
  rpc: rpcRouter,
});

/** The type other services and the extension import: `import type { AppRouter } from 'tabagent-webrtc'`. */
export type AppRouter = typeof appRouter;
export type { Context } from './trpc.ts';
