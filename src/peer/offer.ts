/** The server's offer: a `tabagent` data channel (ordered, reliable), and its host candidates inline. */
import { SERVER_CHANNEL_LABEL } from '../protocol/link.ts';

export interface Offer {
  channel: RTCDataChannel;
  sdp: string;
}

/**
 * Creates the offer. Unless the client trickles, waits (bounded) for ICE gathering, so the SDP already carries
 * the server's candidates: clients that never ask for server candidates (the seed's) still connect. Candidates
 * that come later still reach `onicecandidate` listeners. A trickling client gets none in the SDP, whatever the
 * stack gathered by then (libdatachannel gathers host candidates at once): it takes them from `onicecandidate`,
 * which a node-datachannel peer holds until the client's answer is applied (see its peer-connection.ts for why).
 */
export async function createServerOffer(pc: RTCPeerConnection, { trickle, gatheringTimeoutMs }: { trickle: boolean; gatheringTimeoutMs: number }): Promise<Offer> {
  const channel = pc.createDataChannel(SERVER_CHANNEL_LABEL, { ordered: true });
  const gathered = trickle || gatheringTimeoutMs <= 0 ? undefined : gatheringComplete(pc, gatheringTimeoutMs);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered;
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error('The peer produced no local description');
  return { channel, sdp: trickle ? withoutCandidates(sdp) : sdp };
}

/** The SDP without its candidate lines (and end-of-candidates markers). */
function withoutCandidates(sdp: string): string {
  return sdp.replace(/^a=(candidate:|end-of-candidates).*(\r?\n|$)/gm, '');
}

function gatheringComplete(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const previous = pc.onicegatheringstatechange;
    pc.onicegatheringstatechange = (event) => {
      previous?.call(pc, event);
      if (pc.iceGatheringState === 'complete') done();
    };
    function done() {
      clearTimeout(timer);
      pc.onicegatheringstatechange = previous;
      resolve();
    }
  });
}
