import wrtc from '@roamhq/wrtc';
import { reclaimClosedPeers } from './reclaim.ts';

/** Makes the server's RTCPeerConnections: wrtc's in this process, or stand-ins for a peer process's (process/). */
export type PeerFactory = (config: RTCConfiguration) => RTCPeerConnection;

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
