import wrtc from '@roamhq/wrtc';
import { BULK_PREFIX, pump } from '../raw-echo.ts';
import type { BenchServer } from '../server-process.ts';
import type { BenchSession, Transport } from './types.ts';

const SMALL_MESSAGE = '{"action":"health","request_id":"1"}';
const OPEN_TIMEOUT_MS = 10_000;

/**
 * The floor: a bare wrtc data channel to an echoing peer in the server process (signaled over IPC, ICE trickled
 * both ways), with no framing and no dispatcher.
 */
export function rawTransport(server: BenchServer): Transport {
  let opened = 0;
  return {
    key: 'raw',
    label: 'raw wrtc echo',
    transferNote: 'binary messages of 256 KiB (less 64 bytes) each way, the link\'s backpressure rule',
    async open() {
      const peer = `raw-${++opened}`;
      const pc: RTCPeerConnection = new wrtc.RTCPeerConnection({ iceServers: [] });
      const channel = pc.createDataChannel('raw');
      channel.binaryType = 'arraybuffer';
      let onMessage: (data: unknown) => void = () => {};
      channel.onmessage = ({ data }) => onMessage(data);

      // Candidates wait for the other side's description: ours until the answer, the server's until it is set.
      const ours: RTCIceCandidateInit[] = [];
      let answered = false;
      pc.onicecandidate = ({ candidate }) => {
        if (!candidate) return;
        if (answered) server.sendCandidate(peer, candidate.toJSON());
        else ours.push(candidate.toJSON());
      };
      const theirs: RTCIceCandidateInit[] = [];
      server.onCandidate(peer, (candidate) => (answered ? pc.addIceCandidate(candidate).catch(() => {}) : theirs.push(candidate)));

      const open = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('raw channel did not open')), OPEN_TIMEOUT_MS);
        channel.onopen = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const { sdp } = await server.call({ type: 'raw-offer', peer, sdp: offer.sdp! });
      await pc.setRemoteDescription({ type: 'answer', sdp: sdp! });
      answered = true;
      for (const candidate of ours) server.sendCandidate(peer, candidate);
      for (const candidate of theirs) await pc.addIceCandidate(candidate).catch(() => {});
      await open;

      const request = () =>
        new Promise<void>((resolve) => {
          onMessage = () => resolve();
          channel.send(SMALL_MESSAGE);
        });
      const session: BenchSession = {
        request,
        async transfer(payload) {
          const back = new Promise<void>((resolve) => {
            let received = 0;
            onMessage = (data) => {
              received += (data as ArrayBuffer).byteLength;
              if (received >= payload.length) resolve();
            };
          });
          channel.send(`${BULK_PREFIX}${payload.length}`);
          await pump(channel, payload.length);
          await back;
        },
        async close() {
          // The server's side closes first: wrtc can crash a side that sends as the other closes.
          server.onCandidate(peer, undefined);
          await server.call({ type: 'raw-close', peer });
          pc.close();
        },
      };
      await request();
      return session;
    },
    cpuMs: () => server.cpuMs(),
    memory: () => server.memory(),
  };
}
