/**
 * The pipe between the server and its peer process: each message is a JSON header and an optional byte payload
 * (a data-channel message, carried as raw bytes rather than escaped into JSON). Layout, little-endian:
 * u32 header length, u32 payload length, header (UTF-8 JSON), payload.
 */
const PREFIX_BYTES = 8;

export type Header = Record<string, unknown>;

export interface WireMessage<H = Header> {
  header: H;
  payload?: Uint8Array;
}

/** A payload at least this long goes out as a part of its own rather than copied behind its header. */
const SEPARATE_PAYLOAD_BYTES = 64 * 1024;

/** One message, as the parts to write in order: one buffer, or the head and a large payload uncopied. */
export function encodeMessage(header: Header, payload?: Uint8Array | string): Uint8Array[] {
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const payloadBytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const payloadLength = payloadBytes?.length ?? 0;
  const separate = payloadLength >= SEPARATE_PAYLOAD_BYTES;
  const head = Buffer.allocUnsafe(PREFIX_BYTES + headerBytes.length + (separate ? 0 : payloadLength));
  head.writeUInt32LE(headerBytes.length, 0);
  head.writeUInt32LE(payloadLength, 4);
  headerBytes.copy(head, PREFIX_BYTES);
  if (separate) return [head, payloadBytes!];
  if (payloadBytes) head.set(payloadBytes, PREFIX_BYTES + headerBytes.length);
  return [head];
}

/** Cuts the byte stream from a pipe into messages; holds at most one unfinished message. */
export class MessageReader {
  #chunks: Buffer[] = [];
  #buffered = 0;

  *push(chunk: Buffer): Generator<WireMessage> {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (this.#buffered >= PREFIX_BYTES) {
      const head = this.#peek(PREFIX_BYTES);
      const headerLength = head.readUInt32LE(0);
      const payloadLength = head.readUInt32LE(4);
      const total = PREFIX_BYTES + headerLength + payloadLength;
      if (this.#buffered < total) return;
      const bytes = this.#take(total);
      const header = JSON.parse(bytes.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + headerLength)) as Header;
      yield payloadLength > 0 ? { header, payload: bytes.subarray(PREFIX_BYTES + headerLength) } : { header };
    }
  }

  #peek(length: number): Buffer {
    if (this.#chunks[0].length < length) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0];
  }

  #take(length: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const rest = all.subarray(length);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return all.subarray(0, length);
  }
}
