/**
 * Fragment frames: how the native host sends a frame whose JSON is longer than Chrome takes from a host (1 MiB).
 * The frame's JSON text is cut, at code point boundaries, into slices that each fit in one message:
 *
 *   { "type": "fragment", "message_id": 7, "index": 0, "count": 4, "data": "{\"request_id\":\"r1\",\"type\":\"echo\",..." }
 *
 * Joining the `data` of indexes 0..count-1 gives the original JSON text. Fragments of one message are written one
 * after another, but a reader should key them by `message_id` anyway. No Node imports: an extension can bundle
 * `FragmentAssembler`.
 */

export interface FragmentFrame {
  type: 'fragment';
  message_id: number;
  index: number;
  count: number;
  data: string;
}

/**
 * Room kept in each fragment for everything but its `data` characters: the keys, quotes and punctuation (about 60
 * bytes) and three integers of up to 16 digits.
 */
const FRAME_OVERHEAD_BYTES = 128;

/**
 * Splits `json` into serialized fragment frames of at most `maxBytes` UTF-8 bytes each. Sizes are counted as
 * JSON.stringify escapes the slice (a quote or backslash doubles, a control character grows to 6 bytes), so the
 * bound holds whatever the text contains.
 */
export function fragmentJson(json: string, messageId: number, maxBytes: number): string[] {
  const budget = maxBytes - FRAME_OVERHEAD_BYTES;
  if (!(budget >= 6)) throw new RangeError(`Fragments of ${maxBytes} bytes leave no room for data`);
  const slices: string[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < json.length; ) {
    const code = json.charCodeAt(i);
    const pair = code >= 0xd800 && code <= 0xdbff && (json.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    const width = pair ? 2 : 1;
    const cost = pair ? 4 : escapedBytes(code);
    if (bytes + cost > budget) {
      slices.push(json.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += cost;
    i += width;
  }
  slices.push(json.slice(start));
  return slices.map((data, index) =>
    JSON.stringify({ type: 'fragment', message_id: messageId, index, count: slices.length, data } satisfies FragmentFrame),
  );
}

/** UTF-8 bytes of one UTF-16 code unit (not half of a pair) inside a JSON string, as JSON.stringify writes it. */
function escapedBytes(code: number): number {
  if (code === 0x22 || code === 0x5c) return 2; // \" and \\
  if (code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) return 2; // \b \t \n \f \r
  if (code < 0x20) return 6; // \u00XX
  if (code < 0x80) return 1;
  if (code < 0x800) return 2;
  if (code >= 0xd800 && code <= 0xdfff) return 6; // a lone surrogate is written \uXXXX
  return 3;
}

export function isFragmentFrame(frame: unknown): frame is FragmentFrame {
  return typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'fragment';
}

interface Partial {
  count: number;
  slices: (string | undefined)[];
  received: number;
  chars: number;
}

/** Reassembles fragment frames into the frames they carry. */
export class FragmentAssembler {
  readonly #partials = new Map<number, Partial>();

  /** @param maxChars the longest JSON text it will hold for one message (a bound against a runaway sender). */
  constructor(private readonly maxChars = 64 * 1024 * 1024) {}

  /** Messages still missing fragments. */
  get pending(): number {
    return this.#partials.size;
  }

  /** Takes one fragment; returns the frame it completes, or undefined. Throws on an inconsistent fragment. */
  push(fragment: FragmentFrame): Record<string, unknown> | undefined {
    const { message_id: id, index, count, data } = fragment;
    if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(index) || index < 0 || index >= count || typeof data !== 'string') {
      throw new Error(`Malformed fragment: index ${index} of count ${count} of message ${id}`);
    }
    let partial = this.#partials.get(id);
    if (!partial) this.#partials.set(id, (partial = { count, slices: new Array(count), received: 0, chars: 0 }));
    if (partial.count !== count || partial.slices[index] !== undefined) {
      this.#partials.delete(id);
      throw new Error(`Malformed fragment: message ${id} changed its count or repeated index ${index}`);
    }
    partial.chars += data.length;
    if (partial.chars > this.maxChars) {
      this.#partials.delete(id);
      throw new Error(`Fragmented message ${id} is longer than ${this.maxChars} characters`);
    }
    partial.slices[index] = data;
    if (++partial.received < count) return undefined;
    this.#partials.delete(id);
    return JSON.parse(partial.slices.join('')) as Record<string, unknown>;
  }
}
