import type { PeerFactory } from './factory.ts';
import { reclaimClosedPeer } from './reclaim.ts';
import { withDescriptionCopies } from './wrtc-descriptions.ts';
import { ensureWrtcPatched } from './wrtc-patch.ts';

// wrtc's loader picks its binary when wrtc is first loaded: the patched copy must be in place by then.
ensureWrtcPatched();
const { default: wrtc } = await import('@roamhq/wrtc');

/**
 * A wrtc peer whose descriptions are safe to read at any time (wrtc-descriptions.ts); closing it schedules the
 * collection that frees its native threads (reclaim.ts).
 */
export const createWrtcPeer: PeerFactory = (config) => {
  const pc: RTCPeerConnection = new wrtc.RTCPeerConnection(config);
  withDescriptionCopies(pc);
  const close = pc.close.bind(pc);
  pc.close = () => {
    close();
    reclaimClosedPeer(pc);
  };
  return pc;
};
