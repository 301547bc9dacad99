import { AppError } from '../errors.ts';
import { SERVER_CHANNEL_LABEL } from '../protocol/link.ts';
import type { SignalingClient } from './signaling.ts';

export interface PeerOptions {
  /** The RTCPeerConnection class: the global one in browsers, `wrtc.RTCPeerConnection` in Node. */
  RTCPeerConnection?: typeof RTCPeerConnection;
  clientId?: string;
  /** ICE servers for this side; the server's list (from the offer) by default. */
  iceServers?: RTCIceServer[];
  /** How long to wait for the data channel to open. */
  timeoutMs?: number;
  /** For `webrtc.events` (server candidates that come after the answer); without it they come with the answer. */
  followEvents: boolean;
  /**
   * With `followEvents`: the server reports that it lost this peer (the session is suspended, e.g. its peer
   * process crashed). The client can reconnect at once instead of waiting seconds for ICE to notice.
   */
  onSuspended?(pc: RTCPeerConnection): void;
}

/** A connected peer of a session, with the server's open `tabagent` channel. */
export interface Peer {
  sessionId: string;
  resumeToken: string;
  /** The server kept the session (a resume), rather than opening a new one. */
  resumed: boolean;
  pc: RTCPeerConnection;
  channel: RTCDataChannel;
  /** Stops following the server's candidates (on close). */
  unfollow(): void;
}

/**
 * Asks the server for an offer over tRPC (for the session `resumeToken` names, when given), answers it,
 * trickles ICE both ways, and resolves once the server's `tabagent` channel is open. `onOffered` runs as soon
 * as the server has answered the offer call: on a resume, the server has closed the session's old peer by then.
 */
export async function openPeer(
  signaling: SignalingClient,
  options: PeerOptions,
  resumeToken?: string,
  onOffered?: () => void,
): Promise<Peer> {
  const PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
  if (!PeerConnection) throw new AppError('invalid_request', 'No RTCPeerConnection: pass one (e.g. wrtc.RTCPeerConnection)');
  const offer = await signaling.webrtc.offer.mutate({ clientId: options.clientId, trickle: true, resumeToken });
  onOffered?.();
  const { sessionId } = offer;
  const pc = new PeerConnection({ iceServers: options.iceServers ?? offer.iceServers });
  const subscription = new AbortController();

  const refusals = turnRefusals(pc);
  try {
    const channel = serverChannel(pc, options.timeoutMs ?? 15_000, refusals, subscription.signal);
    // Awaited last: a signaling step that fails first abandons it (its rejection then has no one to tell).
    channel.catch(() => {});
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) signaling.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() }).catch(() => {});
    };
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.offerSdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const { candidates } = await signaling.webrtc.answer.mutate({ sessionId, answerSdp: answer.sdp ?? '' });
    for (const candidate of candidates) pc.addIceCandidate(candidate).catch(() => {});
    if (options.followEvents) followServer(signaling, { sessionId, ticket: offer.eventsTicket }, pc, subscription.signal, options.onSuspended);
    return {
      sessionId,
      resumeToken: offer.resumeToken,
      resumed: offer.resumed,
      pc,
      channel: await channel,
      unfollow: () => subscription.abort(),
    };
  } catch (error) {
    subscription.abort();
    pc.close();
    if (!offer.resumed) signaling.webrtc.close.mutate({ sessionId }).catch(() => {});
    throw error;
  }
}

/**
 * Resolves with the server-created `tabagent` channel once it is open. If it does not open in time after a TURN
 * server refused this peer's credentials, that is the reason given: a relay that would not let the peer in.
 */
function serverChannel(pc: RTCPeerConnection, timeoutMs: number, refusals: TurnRefusal[], abandoned: AbortSignal): Promise<RTCDataChannel> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const [refused] = refusals;
      reject(
        refused
          ? new AppError(
              'unauthorized',
              `The data channel did not open: TURN server ${refused.url} refused the credentials (${refused.code} ${refused.text}); ` +
                "the server's TABAGENT_TURN_SECRET must be the TURN server's shared secret",
              { details: { turn: refused } },
            )
          : new AppError('timeout', `Data channel did not open within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    abandoned.addEventListener('abort', () => clearTimeout(timer), { once: true });
    pc.ondatachannel = ({ channel }) => {
      if (channel.label !== SERVER_CHANNEL_LABEL) return;
      const opened = () => {
        clearTimeout(timer);
        resolve(channel);
      };
      if (channel.readyState === 'open') opened();
      else channel.onopen = opened;
    };
  });
}

interface TurnRefusal {
  url: string;
  code: number;
  text: string;
}

/** STUN/TURN error codes that mean "not these credentials": Unauthorized, Forbidden, Wrong Credentials. */
const CREDENTIALS_REFUSED = new Set([401, 403, 441]);

/** The TURN servers that refused this peer's credentials, as the peer reports them (icecandidateerror). */
function turnRefusals(pc: RTCPeerConnection): TurnRefusal[] {
  const refusals: TurnRefusal[] = [];
  pc.addEventListener('icecandidateerror', (event) => {
    const { url, errorCode: code, errorText: text } = event as RTCPeerConnectionIceErrorEvent;
    if (/^turns?:/.test(url) && CREDENTIALS_REFUSED.has(code) && !refusals.some((r) => r.url === url)) refusals.push({ url, code, text });
  });
  return refusals;
}

/**
 * Follows `webrtc.events`: adds the server's late (trickled) candidates, and passes on a suspension. A resume gives
 * the session a fresh event log, so what this peer hears is about this peer. The session's ticket stands in for the
 * API key, which an EventSource could only put in its URL.
 */
function followServer(
  signaling: SignalingClient,
  session: { sessionId: string; ticket: string },
  pc: RTCPeerConnection,
  signal: AbortSignal,
  onSuspended: PeerOptions['onSuspended'],
) {
  const subscription = signaling.webrtc.events.subscribe(
    session,
    {
      onData: ({ data }) => {
        if (data.kind === 'candidate' && data.candidate) pc.addIceCandidate(data.candidate).catch(() => {});
        else if (data.kind === 'state' && data.state === 'suspended') onSuspended?.(pc);
      },
      onError: () => subscription.unsubscribe(),
    },
  );
  signal.addEventListener('abort', () => subscription.unsubscribe(), { once: true });
}
