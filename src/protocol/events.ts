import { z } from 'zod';

/** Server push events: `{ "type": "event", "event": <name>, "request_id"?, "data" }`. */
export const eventSchemas = {
  model_loading_progress: z.object({
    model_id: z.string(),
    progress: z.number().min(0).max(1),
    status: z.string(),
  }),
  model_pull_progress: z.object({
    model: z.string(),
    status: z.string(),
    completed_bytes: z.number().optional(),
    total_bytes: z.number().optional(),
  }),
  shutting_down: z.object({ grace_ms: z.number() }),
};

export type EventName = keyof typeof eventSchemas;
export type EventData<E extends EventName> = z.infer<(typeof eventSchemas)[E]>;

/** What every transport sends when a graceful shutdown begins. */
export function shutdownNotice(graceMs: number) {
  return { type: 'event', event: 'shutting_down', data: { grace_ms: graceMs } satisfies EventData<'shutting_down'> } as const;
}
