import { AppError } from '../errors.ts';
import { DEFAULT_MAX_MESSAGE_SIZE } from '../protocol/link.ts';
import type { Action, ResponseOf } from '../protocol/registry.ts';
import { RequestChannel, type ParamsArgs } from './request-channel.ts';
import { openPeer, type Peer, type PeerOptions } from './peer.ts';
import { createSignalingClient, hasEventSource, type SignalingClient, type SignalingOptions } from './signaling.ts';

export interface ReconnectOptions {
  /** Wait before the first try (with jitter: half to all of it); it doubles for each next try up to `maxDelayMs`. Default 250. */
  initialDelayMs?: number;
  /** Default 5,000. */
  maxDelayMs?: number;
  /** After this long without a connection, waiting requests fail with `interrupted`. Default 300,000. */
  giveUpAfterMs?: number;
  /** How long the peer may read `disconnected` (ICE may recover) before it counts as lost. Default 2,000. */
  disconnectedMs?: number;
}

export interface ConnectOptions extends SignalingOptions, Omit<PeerOptions, 'followEvents'> {
  /** Reconnect and resume the session when the link drops; on by default (`false` turns it off). */
  reconnect?: boolean | ReconnectOptions;
  /** Requests that may wait while reconnecting; more fail with `not_connected`. Default 256. */
  maxQueued?: number;
}

/** One method per request type: `client.chat({...})`, `client.list_models()`, typed from the registry. */
export type ActionMethods = { [A in Action]: (...args: ParamsArgs<A>) => Promise<ResponseOf<A>> };

export type TabAgent = TabAgentClient & ActionMethods;

/** How long `close()` waits for the server to close the session before closing the peer anyway. */
const CLOSE_TIMEOUT_MS = 2_000;
const RECONNECT_DEFAULTS: Required<ReconnectOptions> = {
  initialDelayMs: 250,
  maxDelayMs: 5_000,
  giveUpAfterMs: 300_000,
  disconnectedMs: 2_000,
};

/**
 * A session: typed requests over its data channel, plus its signaling handles. When the link drops (network
 * change, sleep, server restart) it reconnects with backoff and resumes the session with its resume token.
 */
export class TabAgentClient extends RequestChannel {
  /** The current peer; a reconnect replaces it, and with it the three handles below. */
  private peer: Peer;
  private readonly reconnectOptions: Required<ReconnectOptions> | undefined;
  private reconnecting: Promise<void> | undefined;
  private closing = false;
  private disconnectedTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    peer: Peer,
    readonly signaling: SignalingClient,
    private readonly options: ConnectOptions,
  ) {
    super(peer.channel, maxMessageSizeOf(peer.pc), options.maxQueued);
    this.peer = peer;
    const reconnect = options.reconnect ?? true;
    this.reconnectOptions = reconnect === false ? undefined : { ...RECONNECT_DEFAULTS, ...(reconnect === true ? {} : reconnect) };
    this.waitsOutShutdown = this.reconnectOptions !== undefined;
    this.watch(peer.pc);
  }

  get sessionId(): string {
    return this.peer.sessionId;
  }

  get resumeToken(): string {
    return this.peer.resumeToken;
  }

  get pc(): RTCPeerConnection {
    return this.peer.pc;
  }

  /**
   * Ends the session: stops sending, has the server close it, then closes the peer. The server goes first on
   * purpose: wrtc can crash a process that sends on a channel just as the other side closes it, and this way
   * the side that closes last is the one no longer sending.
   */
  override async close(): Promise<void> {
    this.closing = true;
    this.stop();
    const signal = AbortSignal.timeout(CLOSE_TIMEOUT_MS);
    await this.signaling.webrtc.close.mutate({ sessionId: this.sessionId }, { signal }).catch(() => {});
    this.dropPeer();
  }

  protected override dropped(): void {
    if (!this.reconnectOptions || this.closing) return super.dropped();
    if (this.reconnecting) return;
    this.suspend();
    this.reconnecting = this.reconnect(this.reconnectOptions).finally(() => (this.reconnecting = undefined));
  }

  /** Tries, with backoff, to resume the session; falls back to a new session when the server no longer has it. */
  private async reconnect(settings: Required<ReconnectOptions>): Promise<void> {
    const deadline = Date.now() + settings.giveUpAfterMs;
    let delay = settings.initialDelayMs;
    while (!this.closing) {
      await new Promise((resolve) => setTimeout(resolve, delay / 2 + (Math.random() * delay) / 2));
      delay = Math.min(delay * 2, settings.maxDelayMs);
      try {
        const peer = await this.openReplacement();
        if (this.closing) {
          this.signaling.webrtc.close.mutate({ sessionId: peer.sessionId }).catch(() => {});
          peer.unfollow();
          peer.pc.close();
          return;
        }
        this.adopt(peer);
        await this.resumeOn(peer.channel, maxMessageSizeOf(peer.pc), peer.resumed);
        return;
      } catch (error) {
        if (Date.now() + delay / 2 > deadline) {
          this.dropPeer();
          this.stop(new AppError('interrupted', `Could not reconnect within ${settings.giveUpAfterMs} ms: ${(error as Error).message}`));
          return;
        }
      }
    }
  }

  /**
   * A new peer for this session, or for a new one when the server has forgotten it (restart, grace over).
   * The old peer is closed once the server has let go of it, never while the server may still send on it.
   */
  private async openReplacement(): Promise<Peer> {
    const peerOptions = { ...this.options, followEvents: hasEventSource(this.options), onSuspended: (pc: RTCPeerConnection) => this.serverLost(pc) };
    const old = this.peer;
    const closeOld = () => {
      old.unfollow();
      old.pc.close();
    };
    try {
      return await openPeer(this.signaling, peerOptions, this.resumeToken, closeOld);
    } catch (error) {
      // The session is gone (its server restarted, or in a cluster the instance holding it died): start anew.
      if (appCodeOf(error) !== 'not_found' && appCodeOf(error) !== 'node_gone') throw error;
      return await openPeer(this.signaling, peerOptions, undefined, closeOld);
    }
  }

  private adopt(peer: Peer): void {
    this.peer = peer;
    this.watch(peer.pc);
  }

  /**
   * @internal The server says it lost `pc` (the session is suspended): if it is still the current peer, the link
   * dropped.
   */
  serverLost(pc: RTCPeerConnection): void {
    if (pc === this.pc) this.dropped();
  }

  /** A peer that fails, or stays `disconnected` past the grace, counts as a dropped link. */
  private watch(pc: RTCPeerConnection): void {
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      clearTimeout(this.disconnectedTimer);
      if (pc.connectionState === 'failed') this.dropped();
      if (pc.connectionState === 'disconnected' && this.reconnectOptions) {
        this.disconnectedTimer = setTimeout(() => pc === this.pc && this.dropped(), this.reconnectOptions.disconnectedMs);
      }
    };
  }

  private dropPeer(): void {
    clearTimeout(this.disconnectedTimer);
    this.peer.unfollow();
    this.pc.close();
  }
}

/**
 * Opens a session and returns its client, with a typed method per request type.
 *
 * @example
 *   const client = await connect({ url: 'http://127.0.0.1:8080' });
 *   const { status } = await client.health();
 *   for await (const chunk of client.stream('chat', { messages })) console.log(chunk.delta);
 */
export async function connect(options: ConnectOptions): Promise<TabAgent> {
  const signaling = createSignalingClient(options);
  let client: TabAgentClient | undefined;
  const onSuspended = (pc: RTCPeerConnection) => client?.serverLost(pc);
  const peer = await openPeer(signaling, { ...options, followEvents: hasEventSource(options), onSuspended });
  client = new TabAgentClient(peer, signaling, options);
  return withActionMethods(client);
}

/** `client.<action>(params, options)` is `client.request('<action>', params, options)`. */
function withActionMethods(client: TabAgentClient): TabAgent {
  const methods = new Map<string, unknown>();
  return new Proxy(client, {
    get(target, property, receiver) {
      // `then` stays undefined: the client must not look like a promise to `await`.
      if (typeof property !== 'string' || property in target || property === 'then') return Reflect.get(target, property, receiver);
      let method = methods.get(property);
      if (!method) {
        method = (params?: unknown, options?: unknown) => target.request(property as Action, params as never, options as never);
        methods.set(property, method);
      }
      return method;
    },
  }) as TabAgent;
}

function maxMessageSizeOf(pc: RTCPeerConnection): number {
  return pc.sctp?.maxMessageSize || DEFAULT_MAX_MESSAGE_SIZE;
}

/** Our error code inside a tRPC client error (`data.appCode`), if any. */
function appCodeOf(error: unknown): string | undefined {
  return (error as { data?: { appCode?: string } })?.data?.appCode;
}
