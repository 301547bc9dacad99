import wrtc from '@roamhq/wrtc';

/** Makes the server's RTCPeerConnections. The only module that knows which WebRTC implementation runs. */
export type PeerFactory = (config: RTCConfiguration) => RTCPeerConnection;

export const createWrtcPeer: PeerFactory = (config) => new wrtc.RTCPeerConnection(config);
