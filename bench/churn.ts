/**
 * The abrupt-close churn of `npm run bench`: cycles of connect, a fast streamed chat (the server sending chunk
 * after chunk), and the client's `pc.close()` mid-stream, which reaches the server as an SCTP ABORT while it sends:
 * the moment wrtc can segfault at (a send racing a remote close). Counts the server's peer processes that died
 * (each a native crash: the server replaces it, and its sessions could resume) and whether the server itself did.
 */
import wrtc from '@roamhq/wrtc';
import { connect } from '../src/client/index.ts';
import type { BenchServer } from './server-process.ts';

/** Words in each streamed answer: far more than a cycle reads, so the server is still sending at the close. */
const WORDS = 20_000;
const CLOSE_AFTER_CHUNKS = 50;
const prompt = Array.from({ length: WORDS }, (_, i) => `w${i}`).join(' ');

export interface ChurnResult {
  cycles: number;
  /** Peer processes that died (native crashes), as the server counted them. */
  peer_process_crashes: number;
  /** How the server process itself ended, if it did (its peers in its own process, or the pipe's other end). */
  server_ended?: string;
  /** Cycles whose client did not get as far as the close (a connection refused or timed out). */
  failed: number;
  errors: string[];
}

/** `cycles` cycles, one at a time, against `server` (started with BENCH_UPSTREAM); stops early if it dies. */
export async function churn(server: BenchServer, cycles: number): Promise<ChurnResult> {
  const result: ChurnResult = { cycles: 0, peer_process_crashes: 0, failed: 0, errors: [] };
  for (let i = 0; i < cycles && !server.ended; i++) {
    result.cycles++;
    try {
      await cycle(server.url);
    } catch (error) {
      result.failed++;
      if (result.errors.length < 5) result.errors.push(`cycle ${i}: ${(error as Error).message}`);
    }
  }
  result.peer_process_crashes = server.ended ? result.peer_process_crashes : await server.crashes();
  if (server.ended) result.server_ended = server.ended;
  return result;
}

async function cycle(url: string): Promise<void> {
  // A crashed peer process is restarted by the server; a connect that lands in between may wait for it.
  const client = await connect({ url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false, timeoutMs: 10_000 });
  let chunks = 0;
  try {
    const stream = client.stream('chat', { model: 'llama3.2:3b', messages: [{ role: 'user', content: prompt }] });
    for await (const _ of stream) {
      if (++chunks === CLOSE_AFTER_CHUNKS) client.pc.close();
    }
  } catch (error) {
    if (chunks < CLOSE_AFTER_CHUNKS) throw error;
  } finally {
    await client.close();
  }
  if (chunks < CLOSE_AFTER_CHUNKS) throw new Error(`the stream ended after ${chunks} chunks, before the close`);
}
