/**
 * The errors W3C WebRTC throws, by name, as every peer here makes them: the session layer and the link tell a
 * closed channel or connection by `name === 'InvalidStateError'`, whichever stack (or process) threw it.
 */
export function domError(name: 'InvalidStateError' | 'OperationError' | 'TypeError', message: string): Error {
  return Object.assign(new Error(message), { name });
}

/** What W3C WebRTC throws on a closed connection or channel. */
export function invalidState(message: string): Error {
  return domError('InvalidStateError', message);
}
