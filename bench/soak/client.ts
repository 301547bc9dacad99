/**
 * A soak client: a process of its own (forked by bench/soak/clients.ts), so that a kill is a real SIGKILL of a
 * client mid-stream and the server's peers never share a process with the client's. It runs the cycles it is
 * sent over IPC with the real client library and wrtc, one at a time, and reuses itself until it is killed.
 */
import wrtc from '@roamhq/wrtc';
import { connect } from '../../src/client/index.ts';

export type ToClient =
  | { type: 'cycle'; cycle: number; url: string; words: number; fast?: boolean; killAfterChunks?: number; closeAfterChunks?: number }
  | { type: 'exit' };
export type FromClient =
  | { type: 'ready' }
  | { type: 'done'; cycle: number; chunks: number }
  /** The client closed its peer mid-stream, as asked, after this many chunks. */
  | { type: 'aborted'; cycle: number; chunks: number }
  /** A cycle that is to be killed got this far into its stream: the parent may kill it now. */
  | { type: 'streaming'; cycle: number; sessionId: string }
  | { type: 'failed'; cycle: number; error: string };

const send = (message: FromClient): void => void (process.connected && process.send!(message));

/** The prompt the upstream double echoes back, one token a word. */
export const prompt = (words: number): string => Array.from({ length: words }, (_, i) => `w${i}`).join(' ');

/**
 * Connects, asks `health`, streams a chat and checks its answer, closes; resolves with the chunks it got. With
 * `closeAfterChunks`, closes its peer abruptly after that many instead, and resolves once the stream has ended.
 */
async function run({ cycle, url, words, fast, killAfterChunks, closeAfterChunks }: Extract<ToClient, { type: 'cycle' }>): Promise<FromClient> {
  const client = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
  let chunks = 0;
  try {
    const health = await client.health();
    if (health.status !== 'ok') throw new Error(`health answered ${health.status}`);
    // `[fast]`: the upstream double sends the tokens back to back, so the server is sending when the peer closes.
    const content = fast ? `[fast] ${prompt(words)}` : prompt(words);
    const stream = client.stream('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content }] });
    for await (const chunk of stream) {
      if (!chunk.delta) continue;
      if (++chunks === killAfterChunks) send({ type: 'streaming', cycle, sessionId: client.sessionId });
      if (chunks === closeAfterChunks) client.pc.close();
    }
    const { response } = await stream.result;
    // The upstream double answers "echo:" and the prompt's words, a token each.
    if (response !== `echo: ${prompt(words)}`) throw new Error(`chat answered ${JSON.stringify(response.slice(0, 80))}`);
    return { type: 'done', cycle, chunks };
  } catch (error) {
    // The stream this client cut short ends with an error: that is the cycle going as planned.
    if (closeAfterChunks !== undefined && chunks >= closeAfterChunks) return { type: 'aborted', cycle, chunks };
    throw error;
  } finally {
    await client.close();
  }
}

process.on('message', (message: ToClient) => {
  // A client process is the harness, not what the soak checks: it leaves at once, whatever it holds.
  if (message.type === 'exit') process.exit(0);
  run(message).then(
    (outcome) => send(outcome),
    (error: Error) => send({ type: 'failed', cycle: message.cycle, error: error.message }),
  );
});
// Its parent gone (done, or crashed), a client has no one to serve.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
