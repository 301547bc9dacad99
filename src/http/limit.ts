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
  const body = declared > maxBytes ? failing(tooLarge) : limited(request.body, maxBytes, tooLarge);
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
