import { tracked } from '@trpc/server';
import { answerInput, eventsInput, iceInput, iceServersInput, offerInput, sessionInput } from '../src/signaling/schemas.ts';
import { procedure, router } from './trpc.ts';

/** Signaling: the server offers, the client answers, both trickle ICE; `events` streams the server's side. */
export const webrtcRouter = router({
  offer: procedure.input(offerInput).mutation(({ input, ctx }) => ctx.signaling.offer(ctx.ip, input)),

  answer: procedure.input(answerInput).mutation(({ input, ctx }) => ctx.signaling.answer(input.sessionId, input.answerSdp)),

  ice: procedure.input(iceInput).mutation(({ input, ctx }) => ctx.signaling.ice(input.sessionId, input.candidate)),

  /** STUN/TURN servers for the client's peer (TURN with ephemeral credentials), e.g. to refresh them before a resume. */
  iceServers: procedure.input(iceServersInput).query(({ input, ctx }) => ctx.signaling.iceServers(input.clientId ?? 'anonymous')),

  session: procedure.input(sessionInput).query(({ input, ctx }) => ctx.signaling.info(input.sessionId)),

  close: procedure.input(sessionInput).mutation(({ input, ctx }) => ctx.signaling.close(input.sessionId)),

  /**
   * The server's trickled ICE candidates and state changes, as tracked SSE events: a client that reconnects
   * sends `lastEventId` and gets exactly what it missed. Ends when the session ends. An EventSource, which cannot
   * send the API key, passes the offer's `eventsTicket` instead.
   */
  events: procedure.input(eventsInput).subscription(({ input, ctx, signal }) => {
    const after = Number(input.lastEventId ?? 0) || 0;
    const events = ctx.signaling.events({ sessionId: input.sessionId, ticket: input.ticket, after }, signal);
    return (async function* () {
      for await (const { id, event } of events) yield tracked(String(id), event);
    })();
  }),
});
