import type { DataChannel } from 'node-datachannel';
import { domError, invalidState } from '../dom-errors.ts';

type Handler<E> = ((event: E) => void) | null;

/**
 * A W3C RTCDataChannel over a libdatachannel one, with the members the link and the peer process use. It keeps
 * the W3C contract where libdatachannel differs: `send` on a channel the remote side has just closed throws
 * InvalidStateError (libdatachannel throws a plain Error, "DataChannel is closed" or a failed socket send), and
 * `close` fires once, when the native channel has closed.
 */
export class DatachannelChannel {
  onopen: Handler<Event> = null;
  onclose: Handler<Event> = null;
  /** Binary messages come as Uint8Arrays (Node Buffers) whatever `binaryType` says: every reader here takes any ArrayBufferView. */
  onmessage: Handler<{ data: string | Uint8Array }> = null;
  binaryType = 'arraybuffer';
  readonly label: string;
  #readyState: RTCDataChannelState;
  readonly #native: DataChannel;
  readonly #gone: ((channel: DatachannelChannel) => void) | undefined;

  /** `gone` hears of its close (its peer connection keeps its open channels). */
  constructor(native: DataChannel, gone?: (channel: DatachannelChannel) => void) {
    this.#native = native;
    this.#gone = gone;
    this.label = native.getLabel();
    this.#readyState = native.isOpen() ? 'open' : 'connecting';
    native.onOpen(() => {
      if (this.#readyState !== 'connecting') return;
      this.#readyState = 'open';
      this.onopen?.(new Event('open'));
    });
    // Registered whatever the user sets: node-datachannel frees a channel's callbacks, which otherwise keep the
    // event loop alive, when its closed callback runs.
    native.onClosed(() => this.closed());
    // A failure closes the channel too; the close is what users act on.
    native.onError(() => {});
    native.onMessage((data) => {
      if (this.#readyState !== 'open') return;
      this.onmessage?.({ data: data instanceof ArrayBuffer ? new Uint8Array(data) : data });
    });
  }

  get readyState(): RTCDataChannelState {
    return this.#readyState;
  }

  get bufferedAmount(): number {
    if (this.#readyState !== 'open') return 0;
    try {
      return this.#native.bufferedAmount();
    } catch {
      return 0; // its peer connection was closed: nothing will be sent
    }
  }

  send(data: string | ArrayBufferView | ArrayBuffer): void {
    if (this.#readyState !== 'open') throw invalidState(`Data channel "${this.label}" is ${this.#readyState}`);
    try {
      if (typeof data === 'string') this.#native.sendMessage(data);
      else if (data instanceof ArrayBuffer) this.#native.sendMessageBinary(new Uint8Array(data));
      else this.#native.sendMessageBinary(data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // W3C: a message over the peer's max message size is a TypeError; any other failure means the channel is gone.
      throw /size exceeds/i.test(message) ? domError('TypeError', message) : invalidState(`Data channel "${this.label}" is closed (${message})`);
    }
  }

  /** The native channel closed, or its peer connection did (which may leave it no callback to say so): once. */
  closed(): void {
    if (this.#readyState === 'closed') return;
    this.#readyState = 'closed';
    this.#gone?.(this);
    this.onclose?.(new Event('close'));
  }

  close(): void {
    if (this.#readyState === 'closing' || this.#readyState === 'closed') return;
    this.#readyState = 'closing';
    // On a later turn, as node-datachannel's own polyfill does: closing a channel can wait on libdatachannel's
    // threads, and a peer connection closed in the same turn closes it anyway (release()).
    setImmediate(() => this.release());
  }

  /**
   * Closes the native channel now, its peer connection being closed: only a channel closed itself is called back,
   * and node-datachannel frees its callbacks (which hold the event loop open) in that call.
   */
  release(): void {
    try {
      this.#native.close();
    } catch {
      // already closed and freed
    }
  }
}
