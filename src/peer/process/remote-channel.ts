/**
 * The server's stand-in for a data channel in the peer process: messages go down the pipe as commands, and its
 * state and `bufferedAmount` follow what the process reports.
 */
import { invalidState } from '../dom-errors.ts';
import type { ChannelEvents, ProcessLink } from './process-link.ts';

type Handler<E> = ((event: E) => void) | null;

/** The members of RTCDataChannel the link uses, served by a peer process. */
export class RemoteChannel implements ChannelEvents {
  onopen: Handler<Event> = null;
  onclose: Handler<Event> = null;
  /** Binary messages come as views into the pipe's read buffer (the link takes any ArrayBufferView), uncopied. */
  onmessage: Handler<{ data: string | Uint8Array }> = null;
  /** Always 'arraybuffer': binary messages arrive as ArrayBuffers whatever is set. */
  binaryType = 'arraybuffer';
  /**
   * W3C's, which wrtc lacks: fired when a report from the process brings `bufferedAmount` down to the threshold,
   * so a sender waiting on backpressure resumes then rather than at its next poll.
   */
  bufferedAmountLowThreshold = 0;
  onbufferedamountlow: Handler<Event> = null;
  readonly id: number;
  readonly label: string;
  #readyState: RTCDataChannelState;
  /** Bytes written to the pipe that the process has not yet reported handed to the channel. */
  #inPipe = 0;
  /** What the channel itself buffered, at the last report. */
  #inChannel = 0;
  readonly #host: ProcessLink;

  constructor(host: ProcessLink, id: number, label: string, readyState: RTCDataChannelState) {
    this.#host = host;
    this.id = id;
    this.label = label;
    this.#readyState = readyState;
    host.channels.set(id, this);
  }

  get readyState(): RTCDataChannelState {
    return this.#readyState;
  }

  /** What is still on its way: in the pipe to the peer process, and in the channel's own buffer. */
  get bufferedAmount(): number {
    return this.#inPipe + this.#inChannel;
  }

  send(data: string | ArrayBufferView | ArrayBuffer): void {
    if (this.#readyState !== 'open') throw invalidState(`Data channel "${this.label}" is ${this.#readyState}`);
    const binary = typeof data !== 'string';
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    this.#inPipe += payload.length;
    this.#host.command({ op: 'send', channel: this.id, binary }, payload);
  }

  close(): void {
    if (this.#readyState === 'closing' || this.#readyState === 'closed') return;
    this.#readyState = 'closing';
    this.#host.command({ op: 'close-channel', channel: this.id });
  }

  /** From the peer process: */

  opened(): void {
    if (this.#readyState !== 'connecting') return;
    this.#readyState = 'open';
    this.onopen?.(new Event('open'));
  }

  closed(): void {
    if (this.#readyState === 'closed') return;
    this.#readyState = 'closed';
    this.#host.channels.delete(this.id);
    this.onclose?.(new Event('close'));
  }

  message(binary: boolean, payload: Uint8Array): void {
    if (this.#readyState !== 'open') return;
    const data = binary ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8');
    this.onmessage?.({ data });
  }

  buffered(sent: number, amount: number): void {
    const before = this.bufferedAmount;
    this.#inPipe = Math.max(0, this.#inPipe - sent);
    this.#inChannel = amount;
    const threshold = this.bufferedAmountLowThreshold;
    if (before > threshold && this.bufferedAmount <= threshold) this.onbufferedamountlow?.(new Event('bufferedamountlow'));
  }
}
