import type { Dispatcher } from '../dispatch.ts';
import { log, redact } from '../log.ts';
import { decodeRequest, errorFrame } from '../protocol/frames.ts';
import { ChannelLink, DEFAULT_MAX_MESSAGE_SIZE, type Inbound } from '../protocol/link.ts';
import type { Stats } from '../stats.ts';
import type { Session } from './session.ts';

export interface ServeOptions {
  dispatcher: Dispatcher;
  stats: Stats;
  maxMessageBytes: number;
  /** The session's last data channel closed. */
  onAllChannelsClosed(session: Session): void;
}

/**
 * Serves requests on one data channel of a session (the server's `tabagent` channel or one the client opened):
 * every answer, chunk and event of a request goes back on the channel the request came from.
 */
export function serveChannel(session: Session, channel: RTCDataChannel, options: ServeOptions): ChannelLink {
  const { dispatcher, stats } = options;
  const send = (frame: object, attachment?: Uint8Array) => {
    const json = JSON.stringify(frame);
    const sent = attachment ? link.sendBinary(json, attachment) : link.sendText(json);
    // A closed channel has no one left to tell; the request was already cancelled with it.
    sent.catch((error) => log.debug('answer not delivered', { session: redact(session.id), error }));
  };

  const receive = (message: Inbound) => {
    session.touch();
    const decoded = decodeRequest(message.kind === 'text' ? message.text : message.header, session.caller.assignRequestId);
    if (!decoded.ok) return send(errorFrame(decoded.error, decoded.requestId));
    session.requests++;
    const attachment = message.kind === 'binary' ? message.payload : undefined;
    void dispatcher
      .execute(session.caller, decoded.request, { emit: send, attachment, origin: link })
      .then(({ frame, attachment: reply }) => {
        session.touch();
        send(frame, reply);
      });
  };

  const link: ChannelLink = new ChannelLink(channel, {
    maxMessageSize: session.pc.sctp?.maxMessageSize || DEFAULT_MAX_MESSAGE_SIZE,
    maxMessageBytes: options.maxMessageBytes,
    stats: stats.traffic,
    onMessage: receive,
    onProtocolError: (error) => send(errorFrame(error)),
    onClose: () => {
      session.links.delete(link);
      session.caller.cancel(`Data channel "${channel.label}" closed`, (request) => request.origin === link);
      if (session.links.size === 0 && session.state === 'connected') options.onAllChannelsClosed(session);
    },
  });
  session.links.add(link);
  channel.onopen = () => {
    if (session.state === 'ice_gathering') session.setState('connected');
  };
  if (channel.readyState === 'open' && session.state === 'ice_gathering') session.setState('connected');
  return link;
}
