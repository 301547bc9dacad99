import { createTRPCClient, httpLink, httpSubscriptionLink, splitLink, type TRPCLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../routers/index.ts';

export interface SignalingOptions {
  /** Server root, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /**
   * Extra headers for every signaling call, e.g. `{ authorization: 'Bearer <key>' }` for a server with API keys.
   * EventSource cannot send headers: the `webrtc.events` subscription shows the session's ticket instead.
   */
  headers?: () => Record<string, string>;
  /** For `webrtc.events`; the global one where it exists (browsers). Without one, server candidates come inline. */
  EventSource?: typeof EventSource;
}

export type SignalingClient = ReturnType<typeof createTRPCClient<AppRouter>>;

/** The typed tRPC client for signaling, superjson in every link, SSE for the `webrtc.events` subscription. */
export function createSignalingClient(options: SignalingOptions): SignalingClient {
  const url = `${options.url.replace(/\/+$/, '')}/trpc`;
  const headers = () => options.headers?.() ?? {};
  const http = httpLink({ url, transformer: superjson, headers });
  const EventSourceImpl = options.EventSource ?? (globalThis as { EventSource?: typeof EventSource }).EventSource;
  const links: TRPCLink<AppRouter>[] = EventSourceImpl
    ? [
        splitLink({
          condition: (op) => op.type === 'subscription',
          true: httpSubscriptionLink({ url, transformer: superjson, EventSource: EventSourceImpl }),
          false: http,
        }),
      ]
    : [http];
  return createTRPCClient<AppRouter>({ links });
}

export function hasEventSource(options: SignalingOptions): boolean {
  return Boolean(options.EventSource ?? (globalThis as { EventSource?: unknown }).EventSource);
}
