/**
 * A copy of `request` whose body errors with `tooLarge()` once more than `maxBytes` arrive (at once, when
 * Content-Length already says so). For handlers that read the body themselves, like tRPC's, which then answer
 * with the error in their own shape.
 *
 * The source is never cancelled, only left unread: cancelling a body that Node is still receiving makes Node 20's
 * stream adapter enqueue into a closed controller, an uncaught exception that would end the process.
 */
export function limitBody(request: Request, maxBytes: number, tooLarge: () => Error): Request {
  if (!request.body) return request;
  const declared = Number(request.headers.get('content-length') ?? NaN);
  return withBody(request, declared > maxBytes ? failing(tooLarge) : limited(request.body, maxBytes, tooLarge));
}

/** `request` with `body` in place of its own. */
function withBody(request: Request, body: ReadableStream<Uint8Array>): Request {
  // Built from parts: runtime adapters (srvx on Node) hand over Request look-alikes that `new Request(r)` rejects.
  const init = { method: request.method, headers: request.headers, signal: request.signal, duplex: 'half' };
  return new Request(request.url, { ...init, body } as RequestInit);
}

function failing(tooLarge: () => Error): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (controller) => controller.error(tooLarge()) });
}

function limited(source: ReadableStream<Uint8Array>, maxBytes: number, tooLarge: () => Error): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let seen = 0;
  return new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      seen += value.byteLength;
      if (seen <= maxBytes) return controller.enqueue(value);
      reader.releaseLock();
      controller.error(tooLarge());
    },
  });
}

const OPEN_BRACKET = new Set([0x5b, 0x7b]); // [ {
const CLOSE_BRACKET = new Set([0x5d, 0x7d]); // ] }
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * A copy of `request` whose JSON body errors with `tooDeep()` once its arrays and objects nest more than
 * `maxDepth` deep, counted on the bytes as they stream (strings skipped). A parser that recurses (superjson's)
 * would otherwise overflow the stack on a small body of 100,000 brackets.
 */
export function limitNesting(request: Request, maxDepth: number, tooDeep: () => Error): Request {
  if (!request.body) return request;
  let depth = 0;
  let inString = false;
  let escaped = false;
  const scan = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (const byte of chunk) {
        if (inString) {
          if (escaped) escaped = false;
          else if (byte === BACKSLASH) escaped = true;
          else if (byte === QUOTE) inString = false;
        } else if (byte === QUOTE) inString = true;
        else if (OPEN_BRACKET.has(byte) && ++depth > maxDepth) return controller.error(tooDeep());
        else if (CLOSE_BRACKET.has(byte)) depth--;
      }
      controller.enqueue(chunk);
    },
  });
  return withBody(request, request.body.pipeThrough(scan));
}
