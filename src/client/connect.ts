import { AppError } from '../errors.ts';
import { RequestChannel } from './client.ts';
import { createSignalingClient, hasEventSource, type SignalingClient, type SignalingOptions } from './signaling.ts';

export interface ConnectOptions extends SignalingOptions {
  /** The RTCPeerConnection class: the global one in browsers, `wrtc.RTCPeerConnection` in Node. */
  RTCPeerConnection?: typeof RTCPeerConnection;
  clientId?: string;
  /** ICE servers for this side; the server's list (from the offer) by default. */
  iceServers?: RTCIceServer[];
  /** How long to wait for the data channel to open. */
  timeoutMs?: number;
}

/** How long `close()` waits for the server to close the session before closing the peer anyway. */
const CLOSE_TIMEOUT_MS = 2_000;

/** A connected session: typed requests over the data channel, plus the session's signaling handles. */
export class TabAgentClient extends RequestChannel {
  constructor(
    readonly sessionId: string,
    readonly pc: RTCPeerConnection,
    channel: RTCDataChannel,
    readonly signaling: SignalingClient,
  ) {
    super(channel, pc.sctp?.maxMessageSize || undefined);
  }

  /**
   * Ends the session: stops sending, has the server close it, then closes the peer. The server goes first on
   * purpose: wrtc can crash a process that sends on a channel just as the other side closes it, and this way
   * the side that closes last is the one no longer sending.
   */
  override async close(): Promise<void> {
    this.stop();
    const signal = AbortSignal.timeout(CLOSE_TIMEOUT_MS);
    await this.signaling.webrtc.close.mutate({ sessionId: this.sessionId }, { signal }).catch(() => {});
    this.pc.close();
  }
}

/**
 * Opens a session: asks the server for an offer over tRPC, answers it, trickles ICE both ways, and resolves once
 * the server's `tabagent` data channel is open.
 *
 * @example
 *   const client = await connect({ url: 'http://127.0.0.1:8080' });
 *   const { status } = await client.request('health');
 */
export async function connect(options: ConnectOptions): Promise<TabAgentClient> {
  const PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
  if (!PeerConnection) throw new AppError('invalid_request', 'No RTCPeerConnection: pass one (e.g. wrtc.RTCPeerConnection)');
  const signaling = createSignalingClient(options);
  const offer = await signaling.webrtc.offer.mutate({ clientId: options.clientId, trickle: true });
  const { sessionId } = offer;
  const pc = new PeerConnection({ iceServers: options.iceServers ?? offer.iceServers });
  const subscription = new AbortController();

  try {
    const channel = serverChannel(pc, options.timeoutMs ?? 15_000);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) signaling.webrtc.ice.mutate({ sessionId, candidate: candidate.toJSON() }).catch(() => {});
    };
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.offerSdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const { candidates } = await signaling.webrtc.answer.mutate({ sessionId, answerSdp: answer.sdp ?? '' });
    for (const candidate of candidates) pc.addIceCandidate(candidate).catch(() => {});
    if (hasEventSource(options)) followServerCandidates(signaling, sessionId, pc, subscription.signal);
    const client = new TabAgentClient(sessionId, pc, await channel, signaling);
    pc.addEventListener?.('connectionstatechange', () => {
      if (pc.connectionState === 'closed' || pc.connectionState === 'failed') subscription.abort();
    });
    return client;
  } catch (error) {
    subscription.abort();
    pc.close();
    signaling.webrtc.close.mutate({ sessionId }).catch(() => {});
    throw error;
  }
}

/** Resolves with the server-created `tabagent` channel once it is open. */
function serverChannel(pc: RTCPeerConnection, timeoutMs: number): Promise<RTCDataChannel> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new AppError('timeout', `Data channel did not open within ${timeoutMs} ms`)), timeoutMs);
    pc.ondatachannel = ({ channel }) => {
      if (channel.label !== 'tabagent') return;
      const opened = () => {
        clearTimeout(timer);
        resolve(channel);
      };
      if (channel.readyState === 'open') opened();
      else channel.onopen = opened;
    };
  });
}

/** Adds the server's late (trickled) candidates from `webrtc.events`. */
function followServerCandidates(signaling: SignalingClient, sessionId: string, pc: RTCPeerConnection, signal: AbortSignal) {
  const subscription = signaling.webrtc.events.subscribe(
    { sessionId },
    {
      onData: ({ data }) => {
        if (data.kind === 'candidate' && data.candidate) pc.addIceCandidate(data.candidate).catch(() => {});
      },
      onError: () => subscription.unsubscribe(),
    },
  );
  signal.addEventListener('abort', () => subscription.unsubscribe(), { once: true });
}
