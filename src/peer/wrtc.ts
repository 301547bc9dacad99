import type { PeerFactory } from './factory.ts';
import { reclaimClosedPeer } from './reclaim.ts';
import { ensureWrtcPatched } from './wrtc-patch.ts';

// wrtc's loader picks its binary when wrtc is first loaded: the patched copy must be in place by then.
ensureWrtcPatched();
const { default: wrtc } = await import('@roamhq/wrtc');

/** A wrtc peer; closing it schedules the collection that frees its native threads (reclaim.ts). */
export const createWrtcPeer: PeerFactory = (config) => {
  const pc: RTCPeerConnection = new wrtc.RTCPeerConnection(config);
  const close = pc.close.bind(pc);
  pc.close = () => {
    close();
    reclaimClosedPeer(pc);
  };
  return pc;
};
