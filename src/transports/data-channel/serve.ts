/**
 * A session's data channel as a transport: each message through the one inbound pipeline (src/inbound.ts), its
 * frames back on the channel it came from. On the server's `tabagent` channel they go through the session's
 * outbox, so a client that resumes on a new peer gets what it missed.
 */
import type { Caller, Dispatcher, FinalAnswer } from '../../dispatch.ts';
import { AppError } from '../../errors.ts';
import { serveMessage, type Endpoint, type Route } from '../../inbound.ts';
import { log, redact } from '../../log.ts';
import { decodeFrame, errorFrame, type ResumeFrame } from '../../protocol/frames.ts';
import type { Emit } from '../../protocol/handlers.ts';
import { ChannelLink } from '../../protocol/link.ts';
import type { ReassemblyBudget } from '../../protocol/reassembler.ts';
import type { MessageRate } from '../../security/rate-limit.ts';
import type { Outbox } from '../../session/outbox.ts';
import type { Stats } from '../../stats.ts';

/** What serving a channel needs of its session (src/session/session.ts). */
export interface ChannelSession {
  readonly id: string;
  readonly caller: Caller;
  readonly messageRate: MessageRate;
  readonly reassembly: ReassemblyBudget;
  readonly outbox: Outbox<ChannelLink>;
  touch(): void;
  requestAccepted(): void;
  channelOpened(): void;
  channelClosed(link: ChannelLink, label: string): void;
}

export interface ServeOptions {
  dispatcher: Dispatcher;
  stats: Stats;
  maxMessageBytes: number;
  /** The peer's SCTP max message size: larger messages go as fragments. */
  maxMessageSize: number;
  /** The server's own `tabagent` channel: its requests outlive the link, for a resume. */
  primary: boolean;
}

/** Serves requests on one data channel of a session (the server's `tabagent` channel or one the client opened). */
export function serveChannel(session: ChannelSession, channel: RTCDataChannel, options: ServeOptions): ChannelLink {
  const { dispatcher, primary } = options;
  const sessionLabel = redact(session.id);
  const send = (frame: object, attachment?: Uint8Array) => {
    const json = JSON.stringify(frame);
    const sent = attachment ? link.sendBinary(json, attachment) : link.sendText(json);
    // A closed channel has no one left to tell; the request was already cancelled with it.
    sent.catch((error) => log.debug('answer not delivered', { session: sessionLabel, error }));
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

  const endpoint: Endpoint = {
    caller: session.caller,
    messageRate: session.messageRate,
    send,
    route(requestId) {
      session.requestAccepted();
      // Primary-channel requests belong to the session, not the link: closing the link leaves them running. A
      // duplicate id is answered `conflict` directly: the outbox entry is the running request's.
      if (primary && !session.caller.inFlight.has(requestId)) return keptForResume(session, requestId, link);
      const deliver = ({ frame, attachment }: FinalAnswer) => {
        session.touch();
        send(frame, attachment);
      };
      return { emit: send, deliver, origin: link };
    },
    resume: primary ? resume : undefined,
    notResumable: 'Resume on the server\'s "tabagent" channel; requests on other channels are not kept',
  };

  const link: ChannelLink = new ChannelLink(channel, {
    maxMessageSize: options.maxMessageSize,
    maxMessageBytes: options.maxMessageBytes,
    reassemblyBudget: session.reassembly,
    stats: options.stats.traffic,
    onMessage: (message) => {
      session.touch();
      serveMessage(dispatcher, endpoint, (assignId) =>
        message.kind === 'text' ? { frame: decodeFrame(message.text, assignId) } : { frame: decodeFrame(message.header, assignId), attachment: message.payload },
      );
    },
    onProtocolError: (error) => send(errorFrame(error)),
    onClose: () => session.channelClosed(link, channel.label),
  });
  channel.onopen = () => session.channelOpened();
  return link;
}

/** A `tabagent`-channel request's route: its frames kept in the outbox, sent while the client is there. */
function keptForResume(session: ChannelSession, requestId: string, link: ChannelLink): Route {
  session.outbox.open(requestId, link);
  const emit: Emit = (frame) => {
    const text = JSON.stringify(frame);
    if (frame.type === 'chunk') session.outbox.chunk(requestId, text);
    else session.outbox.live(requestId, text);
  };
  return {
    emit,
    deliver: ({ frame, attachment }) => {
      session.touch();
      session.outbox.finish(requestId, { text: JSON.stringify(frame), attachment });
    },
    origin: session,
  };
}
