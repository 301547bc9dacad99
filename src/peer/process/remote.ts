/**
 * The server's side of the peer process: RemotePeer and RemoteChannel stand in for the backend's RTCPeerConnection
 * and RTCDataChannel, with the members the session layer uses, and forward to the peer process (host.ts). Their
 * state is read synchronously, as from the real objects: each event and reply from the process carries it.
 * When the process dies, every peer it held fails and every channel closes, as if the network had gone: sessions
 * suspend, and clients resume on a fresh process with nothing lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { PeerBackend } from '../../config.ts';
import { builtPath, repositoryRoot } from '../../paths.ts';
import { invalidState } from '../dom-errors.ts';
import { Heartbeat } from './heartbeat.ts';
import type { Command, PeerEvent, PeerMethod, PeerSnapshot } from './protocol.ts';
import { encodeMessage, MessageReader } from './wire.ts';

/**
 * The peer process's code: the built one beside a built server (`npm start` runs dist/server.mjs; plain node then,
 * without tsx's 35 MB), else the source, which this process's loader (tsx, Deno) runs.
 */
const HOST_PATH = import.meta.url.endsWith('.mjs') ? builtPath('peerProcess') : path.join(import.meta.dirname, 'host.ts');
/** How long a closing peer process gets to exit before it is killed. */
const EXIT_WAIT_MS = 2_000;
/** How long a new peer process may take to load wrtc and say it is ready before it counts as hung. */
const STARTUP_TIMEOUT_MS = 30_000;

export interface PeerProcessOptions {
  /** The WebRTC stack the process runs its peers on. */
  backend: PeerBackend;
  /** Silence after which the process counts as hung and is killed (heartbeat.ts). */
  heartbeatTimeoutMs: number;
}

type Handler<E> = ((event: E) => void) | null;

/** One peer process and the peers it holds. */
export class PeerProcess {
  readonly peers = new Map<number, RemotePeer>();
  readonly channels = new Map<number, RemoteChannel>();
  /** Settles when the process has exited, with how it ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Settles once the process serves commands (or has exited). */
  readonly ready: Promise<void>;
  #markReady!: () => void;
  #unavailable: string | undefined;
  #alive = true;
  #closing = false;
  #hung = false;
  /** Its open-file limit, as it reported it once ready; null where it could not read it. */
  fdLimit: number | null = null;
  readonly #heartbeat: Heartbeat;
  readonly #child: ChildProcess;
  readonly #calls = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 0;

  constructor(options: PeerProcessOptions) {
    const [command, args] = hostCommand(options.backend);
    // A process group of its own: a Ctrl-C in the terminal, or a signal to the server's group, reaches the server,
    // which drains its requests and then ends this process itself (it ignores those signals too: host.ts).
    this.#child = spawn(command, args, { cwd: repositoryRoot(), stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    this.#heartbeat = new Heartbeat({
      timeoutMs: options.heartbeatTimeoutMs,
      startupTimeoutMs: Math.max(STARTUP_TIMEOUT_MS, options.heartbeatTimeoutMs),
      ping: () => this.command({ op: 'ping' }),
      hung: () => {
        this.#hung = true;
        this.#child.kill('SIGKILL');
      },
    });
    // A write to a process that just died fails with EPIPE; its exit handler does the cleaning up.
    this.#child.stdin!.on('error', () => {});
    const reader = new MessageReader();
    this.#child.stdout!.on('data', (chunk: Buffer) => {
      this.#heartbeat.heard();
      for (const { header, payload } of reader.push(chunk)) this.#receive(header as PeerEvent, payload);
    });
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': after the process's last words on stdout (why it could not start) have been read.
      this.#child.once('close', (code, signal) => {
        this.#heartbeat.stop();
        this.#died();
        this.#markReady();
        resolve({ code, signal });
      });
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Why the process could not load its peer backend (it then exits); undefined when it could. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  nextId(): number {
    return ++this.#nextId;
  }

  /**
   * Sends a command. Those of one tick go out in one writev (a system call each would cost more than the command),
   * large payloads uncopied.
   */
  command(command: Command, payload?: Uint8Array | string): void {
    if (!this.#alive) return;
    const stdin = this.#child.stdin!;
    if (stdin.writableCorked === 0) {
      stdin.cork();
      process.nextTick(() => stdin.uncork());
    }
    for (const part of encodeMessage(command as never, payload)) stdin.write(part);
  }

  call(peer: number, method: PeerMethod, arg?: unknown): Promise<unknown> {
    if (!this.#alive) return Promise.reject(invalidState('The peer process has exited'));
    const call = this.nextId();
    this.command({ op: 'call', peer, call, method, arg });
    return new Promise((resolve, reject) => this.#calls.set(call, { resolve, reject }));
  }

  /** Whether it is ending because `close()` was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Whether it was killed for not answering the heartbeat. */
  get hung(): boolean {
    return this.#hung;
  }

  /** Ends the process: its peers close with it. Resolves once it has exited (killed if it lingers). */
  async close(): Promise<void> {
    if (!this.#alive) return void (await this.exited);
    this.#closing = true;
    this.#heartbeat.stop();
    this.#child.stdin!.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), EXIT_WAIT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  #receive(event: PeerEvent, payload: Uint8Array | undefined): void {
    switch (event.ev) {
      case 'ready':
        this.fdLimit = event.fdLimit;
        return this.#markReady();
      case 'unavailable':
        this.#unavailable = event.message;
        return;
      case 'pong':
        return;
      case 'reply': {
        this.peers.get(event.peer)?.update(event.snapshot);
        const call = this.#calls.get(event.call);
        this.#calls.delete(event.call);
        if (event.error) call?.reject(Object.assign(new Error(event.error.message), { name: event.error.name }));
        else call?.resolve(event.value);
        return;
      }
      case 'peer':
        return this.peers.get(event.peer)?.fire(event);
      case 'datachannel':
        return this.peers.get(event.peer)?.incoming(event.channel, event.label, event.readyState);
      case 'open':
        return this.channels.get(event.channel)?.opened();
      case 'close':
        return this.channels.get(event.channel)?.closed();
      case 'message':
        return this.channels.get(event.channel)?.message(event.binary, payload ?? new Uint8Array(0));
      case 'buffered':
        return this.channels.get(event.channel)?.buffered(event.sent, event.amount);
    }
  }

  #died(): void {
    this.#alive = false;
    for (const call of this.#calls.values()) call.reject(invalidState('The peer process exited'));
    this.#calls.clear();
    for (const channel of [...this.channels.values()]) channel.closed();
    for (const peer of [...this.peers.values()]) peer.lost();
  }
}

/** The members of RTCPeerConnection the session layer uses, served by a peer process. */
export class RemotePeer {
  onicecandidate: Handler<{ candidate: (RTCIceCandidateInit & { toJSON(): RTCIceCandidateInit }) | null }> = null;
  onicegatheringstatechange: Handler<Event> = null;
  onconnectionstatechange: Handler<Event> = null;
  ondatachannel: Handler<{ channel: RemoteChannel }> = null;
  #state: PeerSnapshot = {
    localDescription: null,
    remoteDescription: null,
    iceGatheringState: 'new',
    connectionState: 'new',
    maxMessageSize: null,
  };
  /** Closed here: what the process reports afterwards no longer counts (a stack may report `closed` on its own). */
  #closed = false;
  readonly #id: number;
  readonly #host: PeerProcess;

  constructor(host: PeerProcess, config: RTCConfiguration) {
    this.#host = host;
    this.#id = host.nextId();
    host.peers.set(this.#id, this);
    host.command({ op: 'peer', peer: this.#id, config });
  }

  get localDescription() {
    return this.#state.localDescription;
  }
  get remoteDescription() {
    return this.#state.remoteDescription;
  }
  get iceGatheringState() {
    return this.#state.iceGatheringState;
  }
  get connectionState(): RTCPeerConnectionState {
    return this.#closed ? 'closed' : this.#state.connectionState;
  }
  get sctp(): { maxMessageSize: number } | null {
    return this.#state.maxMessageSize === null ? null : { maxMessageSize: this.#state.maxMessageSize };
  }

  createDataChannel(label: string, init?: RTCDataChannelInit): RemoteChannel {
    const channel = new RemoteChannel(this.#host, this.#host.nextId(), label, 'connecting');
    this.#host.command({ op: 'channel', peer: this.#id, channel: channel.id, label, init });
    return channel;
  }

  createOffer(): Promise<RTCSessionDescriptionInit> {
    return this.#call('createOffer') as Promise<RTCSessionDescriptionInit>;
  }
  async setLocalDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await this.#call('setLocalDescription', description);
  }
  async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await this.#call('setRemoteDescription', description);
  }
  async addIceCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    await this.#call('addIceCandidate', candidate);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.peers.delete(this.#id);
    this.#host.command({ op: 'close', peer: this.#id });
  }

  #call(method: PeerMethod, arg?: unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(invalidState('The peer connection is closed'));
    return this.#host.call(this.#id, method, arg);
  }

  /** From the peer process: */

  update(snapshot: PeerSnapshot): void {
    if (!this.#closed) this.#state = snapshot;
  }

  fire(event: Extract<PeerEvent, { ev: 'peer' }>): void {
    if (this.#closed) return;
    this.#state = event.snapshot;
    if (event.fire === 'icecandidate') {
      const init = event.candidate;
      this.onicecandidate?.({ candidate: init ? { ...init, toJSON: () => init } : null });
    }
    else if (event.fire === 'icegatheringstatechange') this.onicegatheringstatechange?.(new Event(event.fire));
    else this.onconnectionstatechange?.(new Event(event.fire));
  }

  incoming(id: number, label: string, readyState: RTCDataChannelState): void {
    const channel = new RemoteChannel(this.#host, id, label, readyState);
    if (this.ondatachannel) this.ondatachannel({ channel });
    else channel.close();
  }

  /** The process died: as a network failure would, the connection fails. */
  lost(): void {
    if (this.#closed) return;
    this.#state = { ...this.#state, connectionState: 'failed' };
    this.#host.peers.delete(this.#id);
    this.onconnectionstatechange?.(new Event('connectionstatechange'));
  }
}

/** The members of RTCDataChannel the link uses, served by a peer process. */
export class RemoteChannel {
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
  readonly #host: PeerProcess;

  constructor(host: PeerProcess, id: number, label: string, readyState: RTCDataChannelState) {
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

/**
 * How to start host.ts on `backend`: with this process's runtime and loader (tsx under Node; Deno with the
 * project's config).
 */
function hostCommand(backend: PeerBackend): [string, string[]] {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (deno) return [deno.execPath(), ['run', '--allow-env', '--allow-read', '--allow-ffi', '--allow-sys', '--config', path.join(repositoryRoot(), 'deno.json'), HOST_PATH, backend]];
  // The loader flags (tsx's --import/--require) carry over; a debugger port would clash, so those do not.
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--inspect'));
  return [process.execPath, [...execArgv, HOST_PATH, backend]];
}
