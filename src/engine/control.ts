import { AppError } from '../errors.ts';
import type { Handlers, InFlight } from '../protocol/handlers.ts';
import { specOf } from '../protocol/registry.ts';

const isGeneration = (request: InFlight) => specOf(request.action).streams === true;

/** Generation control acts on the caller's own requests only: one session cannot stop another's. */
export const controlHandlers = {
  stop_generation: ({ target_request_id: target }, { caller, requestId }) => {
    if (target === undefined) {
      return { stopped: caller.cancel('Stopped by stop_generation', (r) => isGeneration(r) && r.requestId !== requestId) };
    }
    if (target === requestId || !caller.inFlight.has(target)) {
      throw new AppError('not_found', `No request "${target}" is in flight`, { details: { target_request_id: target } });
    }
    return { stopped: caller.cancel(`Stopped by stop_generation`, (r) => r.requestId === target) };
  },

  halt_status: (_params, { caller, requestId }) => {
    const now = Date.now();
    const in_flight = [...caller.inFlight.values()]
      .filter((r) => r.requestId !== requestId)
      .map((r) => ({ request_id: r.requestId, action: r.action, elapsed_ms: now - r.startedAt }));
    return { generating: [...caller.inFlight.values()].some(isGeneration), in_flight };
  },
} satisfies Partial<Handlers>;
