import type { PeerFactory } from './factory.ts';
import { DatachannelPeerConnection } from './node-datachannel/peer-connection.ts';

/**
 * A libdatachannel peer (node-datachannel), behind the W3C stand-ins in node-datachannel/. Unlike a wrtc peer it
 * needs no collection to free its threads: libdatachannel's are shared by every peer, and close() frees the rest.
 */
export const createDatachannelPeer: PeerFactory = (config) => new DatachannelPeerConnection(config) as unknown as RTCPeerConnection;
