import type { Dispatcher, FinalAnswer } from '../dispatch.ts';
import type { Emit } from '../protocol/handlers.ts';
import { AppError } from '../errors.ts';
import { log, redact } from '../log.ts';
import { decodeFrame, errorFrame, requestIdOf, undeliverable, type ResumeFrame } from '../protocol/frames.ts';
import { ChannelLink, DEFAULT_MAX_MESSAGE_SIZE, type Inbound } from '../protocol/link.ts';
import type { Stats } from '../stats.ts';
import type { Session } from './session.ts';

export interface ServeOptions {
  dispatcher: Dispatcher;
  stats: Stats;
  maxMessageBytes: number;
  /** The server's own `tabagent` channel: its requests outlive the link, for a resume. */
  primary: boolean;
}

/**
 * Serves requests on one data channel of a session (the server's `tabagent` channel or one the client opened).
 * A request's chunks, events and answer go back on the channel it came from; on the `tabagent` channel they
 * go through the session's outbox, so a client that resumes on a new peer gets what it missed.
 */
export function serveChannel(session: Session, channel: RTCDataChannel, options: ServeOptions): ChannelLink {
  const { dispatcher, stats, primary } = options;
  const sessionLabel = redact(session.id);
  const send = (frame: object, attachment?: Uint8Array) => {
    const json = JSON.stringify(frame);
    const sent = attachment ? link.sendBinary(json, attachment) : link.sendText(json);
    // A closed channel has no one left to tell; the request was already cancelled with it.
    sent.catch((error) => log.debug('answer not delivered', { session: sessionLabel, error }));
  };

  /** Where a primary-channel request's frames go: kept for a resume, sent while the client is there. */
  const viaOutbox = (requestId: string): Emit => (frame) => {
    const text = JSON.stringify(frame);
    if (frame.type === 'chunk') session.outbox.chunk(requestId, text);
    else session.outbox.live(requestId, text);
  };

  const resume = ({ pending }: ResumeFrame) => {
    const unknown: string[] = [];
    for (const { request_id: requestId, received } of pending) {
      const claimed = session.outbox.claim(requestId, received, link);
      if (claimed === 'unknown') unknown.push(requestId);
      if (claimed === 'lost') {
        send(errorFrame(new AppError('interrupted', 'The answer was lost while the client was away (resume buffer full); retry'), requestId));
      }
    }
    send({ type: 'resumed', unknown });
  };

  const receive = (message: Inbound) => {
    session.touch();
    const limited = session.messageRate.take();
    const decoded = decodeFrame(message.kind === 'text' ? message.text : message.header, session.caller.assignRequestId);
    if (limited) return send(errorFrame(limited, requestIdOf(decoded)));
    if (!decoded.ok) return send(errorFrame(decoded.error, decoded.requestId));
    if ('resume' in decoded) return primary ? resume(decoded.resume) : send(errorFrame(notResumable()));
    const { request } = decoded;
    session.requests++;
    const attachment = message.kind === 'binary' ? message.payload : undefined;
    // Primary-channel requests belong to the session, not the link: closing the link leaves them running.
    // A duplicate id is answered `conflict` directly: the outbox entry is the running request's.
    const kept = primary && !session.caller.inFlight.has(request.requestId);
    if (kept) session.outbox.open(request.requestId, link);
    const deliver = ({ frame, attachment: reply }: FinalAnswer) => {
      session.touch();
      if (kept) session.outbox.finish(request.requestId, { text: JSON.stringify(frame), attachment: reply });
      else send(frame, reply);
    };
    void dispatcher
      .execute(session.caller, request, { emit: kept ? viaOutbox(request.requestId) : send, attachment, origin: kept ? session : link })
      .then(deliver)
      .catch((error) => deliver({ frame: undeliverable(error, request.requestId) }));
  };

  const link: ChannelLink = new ChannelLink(channel, {
    maxMessageSize: session.pc.sctp?.maxMessageSize || DEFAULT_MAX_MESSAGE_SIZE,
    maxMessageBytes: options.maxMessageBytes,
    reassemblyBudget: session.reassembly,
    stats: stats.traffic,
    onMessage: receive,
    onProtocolError: (error) => send(errorFrame(error)),
    onClose: () => {
      const current = session.links.delete(link);
      session.outbox.detach(link);
      session.caller.cancel(`Data channel "${channel.label}" closed`, (request) => request.origin === link);
      // A channel of a peer the session already replaced says nothing about the session.
      if (current && (link === session.primary || session.links.size === 0)) session.lose(`data channel "${channel.label}" closed`);
    },
  });
  session.links.add(link);
  if (primary) session.primary = link;
  channel.onopen = () => {
    if (session.state === 'ice_gathering') session.setState('connected');
  };
  if (channel.readyState === 'open' && session.state === 'ice_gathering') session.setState('connected');
  return link;
}

function notResumable(): AppError {
  return new AppError('invalid_request', 'Resume on the server\'s "tabagent" channel; requests on other channels are not kept', {
    details: { field: 'type' },
  });
}
