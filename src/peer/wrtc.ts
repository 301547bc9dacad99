import wrtc from '@roamhq/wrtc';
import type { PeerFactory } from './factory.ts';
import { reclaimClosedPeers } from './reclaim.ts';

/** A wrtc peer; closing it schedules the collection that frees its native threads (reclaim.ts). */
export const createWrtcPeer: PeerFactory = (config) => {
  const pc: RTCPeerConnection = new wrtc.RTCPeerConnection(config);
  const close = pc.close.bind(pc);
  pc.close = () => {
    close();
    reclaimClosedPeers();
  };
  return pc;
};
