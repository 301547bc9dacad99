/**
 * The peer process: holds the server's peers, on the backend named by its one argument (`wrtc` or
 * `node-datachannel`), so that a native crash in the WebRTC stack ends this process, not the server. The server
 * (peer-process.ts) drives it over stdin/stdout; logs go to stderr. It exits when stdin ends: the server closed it, or
 * the server is gone. Signals do not end it: on SIGINT or SIGTERM (a Ctrl-C, systemd stopping the service) the
 * server still drains its requests through these peers, then closes it.
 */
import { PEER_BACKENDS, type PeerBackend } from '../../config.ts';
import { loadPeerFactory } from '../backend.ts';
import { invalidState } from '../dom-errors.ts';
import type { PeerFactory } from '../factory.ts';
import { openFileLimit } from '../fd-budget.ts';
import type { Command, PeerEvent, PeerSnapshot } from './protocol.ts';
import { encodeMessage, MessageReader } from './wire.ts';

/** How often a channel that still buffers the server's bytes reports its drain (wrtc has no bufferedamountlow event). */
const DRAIN_POLL_MS = 2;
/**
 * Small sends are measured in batches: at once past this many bytes, else after REPORT_DELAY_MS. A measure reads
 * wrtc's bufferedAmount (a synchronous call into its network thread) and a report is a message of its own, which
 * per request would cost more than the request; the server counts at most this much too many as buffered
 * meanwhile, far under the link's high water mark.
 */
const REPORT_BYTES = 256 * 1024;
const REPORT_DELAY_MS = 10;

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

const stdout = process.stdout.write.bind(process.stdout);
/** A write to a server that is gone fails with EPIPE: nothing is left to serve. */
const writeOut = (bytes: Uint8Array) => {
  try {
    stdout(bytes);
  } catch {
    process.exit(0);
  }
};
process.stdout.on('error', () => process.exit(0));
// stdout carries the protocol alone: anything else printed lands on stderr.
process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
/**
 * Events go out once per turn of the event loop, together: a write to the pipe is a system call (a blocking one:
 * stdout to a pipe is synchronous in Node, which also holds this process back when the server falls behind), and
 * under load many events come in one turn.
 */
let pending: Uint8Array[] = [];
const emit = (event: PeerEvent, payload?: Uint8Array | string) => {
  if (pending.length === 0) setImmediate(flush);
  for (const part of encodeMessage(event as never, payload)) pending.push(part);
};
/** One writev of the turn's events: large payloads (messages from clients) go out uncopied. */
function flush(): void {
  const parts = pending;
  pending = [];
  process.stdout.cork();
  for (const part of parts) writeOut(part);
  process.stdout.uncork();
}

const peers = new Map<number, RTCPeerConnection>();
const channels = new Map<number, RTCDataChannel>();
let nextIncomingChannel = 0;

function snapshot(pc: RTCPeerConnection): PeerSnapshot {
  const description = (d: RTCSessionDescription | null) => (d ? { type: d.type, sdp: d.sdp } : null);
  return {
    localDescription: description(pc.localDescription),
    remoteDescription: description(pc.remoteDescription),
    iceGatheringState: pc.iceGatheringState,
    connectionState: pc.connectionState,
    maxMessageSize: pc.sctp?.maxMessageSize ?? null,
  };
}

let createPeer: PeerFactory;

function openPeer(peer: number, config: RTCConfiguration): void {
  const pc = createPeer(config);
  peers.set(peer, pc);
  const tell = (fire: Extract<PeerEvent, { ev: 'peer' }>['fire'], candidate?: RTCIceCandidate | null) =>
    emit({ ev: 'peer', peer, snapshot: snapshot(pc), fire, ...(candidate === undefined ? {} : { candidate: candidate?.toJSON() ?? null }) });
  pc.onicecandidate = ({ candidate }) => tell('icecandidate', candidate);
  pc.onicegatheringstatechange = () => tell('icegatheringstatechange');
  pc.onconnectionstatechange = () => tell('connectionstatechange');
  pc.ondatachannel = ({ channel }) => {
    const id = --nextIncomingChannel;
    watchChannel(id, channel);
    emit({ ev: 'datachannel', peer, channel: id, label: channel.label, readyState: channel.readyState });
  };
}

function watchChannel(id: number, channel: RTCDataChannel): void {
  channels.set(id, channel);
  channel.binaryType = 'arraybuffer';
  channel.onopen = () => emit({ ev: 'open', channel: id });
  channel.onclose = () => {
    channels.delete(id);
    outgoing.delete(id);
    emit({ ev: 'close', channel: id });
  };
  channel.onmessage = ({ data }) => {
    if (typeof data === 'string') emit({ ev: 'message', channel: id, binary: false }, data);
    else emit({ ev: 'message', channel: id, binary: true }, bytesOf(data as ArrayBuffer | ArrayBufferView));
  };
}

/** A binary message as bytes, uncopied: wrtc gives ArrayBuffers, node-datachannel Buffers. */
function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

async function call(command: Extract<Command, { op: 'call' }>): Promise<void> {
  const pc = peers.get(command.peer);
  const reply = (fields: { value?: unknown; error?: { name: string; message: string } }) =>
    emit({ ev: 'reply', call: command.call, peer: command.peer, snapshot: pc ? snapshot(pc) : closedSnapshot(), ...fields });
  try {
    if (!pc) throw invalidState('The peer connection is closed');
    const arg = command.arg as never;
    const value =
      command.method === 'createOffer' ? await pc.createOffer()
      : command.method === 'setLocalDescription' ? await pc.setLocalDescription(arg)
      : command.method === 'setRemoteDescription' ? await pc.setRemoteDescription(arg)
      : await pc.addIceCandidate(arg);
    reply({ value: value && { type: value.type, sdp: value.sdp } });
  } catch (error) {
    const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
    reply({ error: { name, message } });
  }
}

function closedSnapshot(): PeerSnapshot {
  return { localDescription: null, remoteDescription: null, iceGatheringState: 'complete', connectionState: 'closed', maxMessageSize: null };
}

/**
 * What the server counts as buffered on a channel it sends on is the bytes still in the pipe plus what the channel
 * buffers. So for each channel the process tells it the bytes that left the pipe into the channel since it last
 * said, and what the channel buffers: as last read, plus what went in since. Reading is a synchronous call into
 * wrtc's network thread, which under bulk traffic holds this thread for as long as that one is busy, so a batch of
 * sends is told at once (the server keeps sending) but the channel is read only every DRAIN_POLL_MS while it drains.
 */
interface Outgoing {
  /** Bytes that went into the channel since the server was last told. */
  sent: number;
  /** What the channel buffers: last read, plus `sent` since then. Never below the truth. */
  amount: number;
  /** The amount the server was last told. */
  told: number;
}
const outgoing = new Map<number, Outgoing>();
let unreportedBytes = 0;
let tellSoon: ReturnType<typeof setImmediate> | undefined;
let measureTimer: ReturnType<typeof setTimeout> | undefined;
let measureAt = Infinity;

function sent(id: number, bytes: number): void {
  let channel = outgoing.get(id);
  if (!channel) outgoing.set(id, (channel = { sent: 0, amount: 0, told: 0 }));
  channel.sent += bytes;
  channel.amount += bytes;
  unreportedBytes += bytes;
  if (unreportedBytes < REPORT_BYTES) return measureIn(REPORT_DELAY_MS);
  tellSoon ??= setImmediate(tell);
  measureIn(DRAIN_POLL_MS);
}

/** Reads the channels within `ms` (or sooner, if a read is due sooner already). */
function measureIn(ms: number): void {
  const at = performance.now() + ms;
  if (measureTimer !== undefined && measureAt <= at) return;
  clearTimeout(measureTimer);
  measureAt = at;
  measureTimer = setTimeout(measure, ms);
}

/** Tells the server what went into each channel, with the estimated amounts: no read of wrtc. */
function tell(): void {
  tellSoon = undefined;
  unreportedBytes = 0;
  for (const [id, channel] of outgoing) if (channel.sent > 0) report(id, channel);
}

/** Reads what each channel still buffers, tells the server where it changed, and keeps reading those that drain. */
function measure(): void {
  measureTimer = undefined;
  for (const [id, channel] of outgoing) {
    const native = channels.get(id);
    if (!native) {
      outgoing.delete(id); // closed: the server has its close event, and no longer counts it
      continue;
    }
    channel.amount = native.bufferedAmount;
    if (channel.sent > 0 || channel.amount !== channel.told) report(id, channel);
    if (channel.amount === 0) outgoing.delete(id);
  }
  if (outgoing.size > 0) measureIn(DRAIN_POLL_MS);
}

function report(id: number, channel: Outgoing): void {
  emit({ ev: 'buffered', channel: id, sent: channel.sent, amount: channel.amount });
  channel.sent = 0;
  channel.told = channel.amount;
}

function send(id: number, binary: boolean, payload: Uint8Array | undefined): void {
  const bytes = payload ?? new Uint8Array(0);
  const channel = channels.get(id);
  try {
    if (binary) channel?.send(bytes as Uint8Array<ArrayBuffer>);
    else channel?.send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch {
    // The channel is closing (the stack throws InvalidStateError while readyState may still read 'open'): its
    // close event tells the server; the bytes still count as gone from the pipe.
  }
  sent(id, bytes.length);
}

function run(command: Command, payload: Uint8Array | undefined): void {
  switch (command.op) {
    case 'peer':
      return openPeer(command.peer, command.config);
    case 'call':
      return void call(command);
    case 'channel': {
      const pc = peers.get(command.peer);
      if (pc) watchChannel(command.channel, pc.createDataChannel(command.label, command.init));
      else emit({ ev: 'close', channel: command.channel });
      return;
    }
    case 'send':
      return send(command.channel, command.binary, payload);
    case 'close-channel':
      return channels.get(command.channel)?.close();
    case 'close': {
      const pc = peers.get(command.peer);
      peers.delete(command.peer);
      pc?.close();
      return;
    }
    case 'ping':
      return emit({ ev: 'pong' });
  }
}

const backend = process.argv[2] as PeerBackend;
try {
  if (!PEER_BACKENDS.includes(backend)) throw new Error(`Unknown peer backend ${JSON.stringify(backend)}: one of ${PEER_BACKENDS.join(', ')}`);
  createPeer = await loadPeerFactory(backend);
} catch (error) {
  // The server reports this as why it cannot start; an exit alone would say nothing.
  writeOut(Buffer.concat(encodeMessage({ ev: 'unavailable', message: (error as Error).message } satisfies PeerEvent)));
  process.exit(1);
}
const reader = new MessageReader();
process.stdin.on('data', (chunk: Buffer) => {
  for (const { header, payload } of reader.push(chunk)) run(header as Command, payload);
});
emit({ ev: 'ready', fdLimit: openFileLimit() });
process.stdin.on('end', () => {
  for (const pc of peers.values()) pc.close();
  // Native threads (wrtc's) can keep the loop alive after every peer closed: leave explicitly.
  process.exit(0);
});
