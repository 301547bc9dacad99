import { ENV_VARS, type PeerBackend } from '../config.ts';
import type { PeerFactory } from './factory.ts';

/** What to do when a backend's native module will not load, by backend. */
const REMEDY: Record<PeerBackend, string> = {
  wrtc: '`npm ci` installs its prebuilt binary (@roamhq/wrtc-<platform>-<arch>)',
  'node-datachannel':
    '`npm ci` installs its prebuilt binary (the optional dependency @node-datachannel/<platform>-<arch>; not with ' +
    `--omit=optional); ${ENV_VARS.peerBackend}=wrtc runs the peers on wrtc instead`,
};

/**
 * Loads a peer backend: its native module, only when chosen (a backend that cannot load here, such as one with no
 * binary for this platform or runtime, costs nothing unless asked for), and the factory for its peers.
 * Rejects with an error that names the setting and what to do.
 */
export async function loadPeerFactory(backend: PeerBackend): Promise<PeerFactory> {
  try {
    if (backend === 'node-datachannel') return (await import('./node-datachannel.ts')).createDatachannelPeer;
    return (await import('./wrtc.ts')).createWrtcPeer;
  } catch (cause) {
    const runtime = 'Deno' in globalThis ? ' under Deno' : '';
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`${ENV_VARS.peerBackend}=${backend}: its native module did not load${runtime} (${why}); ${REMEDY[backend]}`, { cause });
  }
}
