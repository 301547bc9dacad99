/**
 * The floor every transport is measured against: a bare wrtc data channel, no framing, no dispatcher.
 * The echoing side sends each message straight back; after `bulk:<bytes>` it takes that many bytes, then sends
 * as many back, so a transfer is all up, then all back, as an `echo` with an attachment is.
 */
export const BULK_PREFIX = 'bulk:';
/** Under the 256 KiB max message size of Chrome and wrtc. */
export const RAW_MESSAGE_BYTES = 256 * 1024 - 64;
/** The link's own rule: nothing is handed to the channel while more than 1 MiB is buffered. */
const HIGH_WATER = 1024 * 1024;
const POLL_MS = 2;

/** Sends `bytes` bytes in RAW_MESSAGE_BYTES messages, holding back while the channel's buffer is over 1 MiB. */
export async function pump(channel: RTCDataChannel, bytes: number): Promise<void> {
  const message = new Uint8Array(RAW_MESSAGE_BYTES);
  for (let sent = 0; sent < bytes; sent += message.length) {
    while (channel.bufferedAmount > HIGH_WATER) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    channel.send(sent + message.length <= bytes ? message : message.subarray(0, bytes - sent));
  }
}

/** The echoing side of a raw channel. */
export function echo(channel: RTCDataChannel): void {
  channel.binaryType = 'arraybuffer';
  let expected = 0;
  let received = 0;
  channel.onmessage = ({ data }) => {
    if (expected > 0) {
      received += (data as ArrayBuffer).byteLength;
      if (received < expected) return;
      const bytes = expected;
      expected = 0;
      void pump(channel, bytes).catch(() => {});
    } else if (typeof data === 'string' && data.startsWith(BULK_PREFIX)) {
      expected = Number(data.slice(BULK_PREFIX.length));
      received = 0;
    } else {
      channel.send(data);
    }
  };
}
