/**
 * Chrome's native messaging framing, both ways: each message is a 32-bit length in the platform's own byte order,
 * then that many bytes of UTF-8 JSON. The host and the test client both read and write through this module.
 */
import { endianness } from 'node:os';
import { AppError } from '../../errors.ts';

/** Chrome refuses a longer message from the host (and disconnects the port). */
export const MAX_HOST_MESSAGE_BYTES = 1024 * 1024;
/** Chrome sends nothing longer to the host. */
export const MAX_BROWSER_MESSAGE_BYTES = 64 * 1024 * 1024;
export const LENGTH_PREFIX_BYTES = 4;

const littleEndian = endianness() === 'LE';

/** One whole message: the length prefix and the UTF-8 bytes of `json`. */
export function encodeNativeMessage(json: string): Buffer {
  const length = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + length);
  writeLength(out, length);
  out.write(json, LENGTH_PREFIX_BYTES, 'utf8');
  return out;
}

/** A bare length prefix; tests use it to declare lengths the bytes that follow do not honour. */
export function encodeLength(length: number): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
  writeLength(out, length);
  return out;
}

function writeLength(out: Buffer, length: number): void {
  if (littleEndian) out.writeUInt32LE(length, 0);
  else out.writeUInt32BE(length, 0);
}

export type NativeInput = { kind: 'message'; bytes: Buffer } | { kind: 'error'; error: AppError };

/**
 * Cuts a byte stream into messages. A length over the limit is answered with `payload_too_large` as soon as the
 * prefix arrives, and the bytes it declares are skipped as they come (never held), so a writer that really sent
 * them is back in step after them.
 */
export class NativeMessageReader {
  readonly #maxMessageBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The length of the message being read; -1 while waiting for a prefix. */
  #length = -1;
  /** Bytes of an oversize message still to discard. */
  #skipping = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received that are not yet part of a whole message. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): NativeInput[] {
    const out: NativeInput[] = [];
    if (this.#skipping > 0) {
      const skipped = Math.min(this.#skipping, chunk.length);
      this.#skipping -= skipped;
      chunk = chunk.subarray(skipped);
    }
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < LENGTH_PREFIX_BYTES) break;
        const prefix = this.#take(LENGTH_PREFIX_BYTES);
        const length = littleEndian ? prefix.readUInt32LE(0) : prefix.readUInt32BE(0);
        if (length > this.#maxMessageBytes) {
          out.push({ kind: 'error', error: tooLarge(length, this.#maxMessageBytes) });
          const dropped = Math.min(length, this.#buffered);
          this.#take(dropped);
          this.#skipping = length - dropped;
          if (this.#skipping > 0) break;
          continue;
        }
        this.#length = length;
      }
      if (this.#buffered < this.#length) break;
      out.push({ kind: 'message', bytes: this.#take(this.#length) });
      this.#length = -1;
    }
    return out;
  }

  /** The input ended: an error when it stopped inside a message (a skipped one was reported already). */
  end(): AppError | undefined {
    if (this.#buffered === 0 && this.#length < 0) return undefined;
    const error =
      this.#length < 0
        ? new AppError('invalid_request', `Input ended inside a length prefix (${this.#buffered} of ${LENGTH_PREFIX_BYTES} bytes)`)
        : new AppError('invalid_request', `Input ended inside a message: ${this.#buffered} of its ${this.#length} bytes arrived`);
    this.#chunks = [];
    this.#buffered = 0;
    this.#length = -1;
    return error;
  }

  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let offset = 0; offset < n; ) {
      const chunk = this.#chunks[0];
      const taken = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, taken);
      offset += taken;
      if (taken === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(taken);
    }
    return out;
  }
}

function tooLarge(length: number, limit: number): AppError {
  return new AppError('payload_too_large', `Message of ${length} bytes exceeds the limit of ${limit}; its bytes are skipped`, {
    details: { limit, length },
  });
}
