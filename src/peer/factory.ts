/**
 * Makes the server's RTCPeerConnections: a backend's own in this process (backend.ts loads it), or stand-ins for a
 * peer process's (process/). The session layer uses only W3C members, so any of them serves it.
 */
export type PeerFactory = (config: RTCConfiguration) => RTCPeerConnection;
