/**
 * wrtc's second race, worked around in JavaScript (docs/DESIGN.md, "wrtc's description race").
 *
 * `pc.localDescription` (and `remoteDescription`) asks libwebrtc's signaling thread for a pointer to its description,
 * then serializes it on the JS thread. Meanwhile the signaling thread adds each candidate it gathers to the local
 * description (and each applied candidate to the remote one): read while ICE gathers, the serializer walks a
 * description being changed, and the process dies in `webrtc::SdpSerialize` (SIGSEGV; found by the churn soak, whose
 * peer process read the descriptions on every ICE event). So a wrtc peer answers both from copies of its own: what
 * was set, plus the candidates since, as libwebrtc adds them. The native description is read only when nothing can
 * change it: the local one once gathering is complete (then it is exact, even for candidates whose events have not
 * come yet), the remote one after a failed `setRemoteDescription` (libwebrtc may keep an answer it failed to apply;
 * no candidate is applied then, the session holds them).
 */

type Description = RTCSessionDescriptionInit | null;

/** Gives `pc` (a wrtc RTCPeerConnection) descriptions read from copies kept in JavaScript. */
export function withDescriptionCopies(pc: RTCPeerConnection): void {
  // wrtc's own getters read `_pc.localDescription` and `_pc.remoteDescription`, accessors of the native class:
  // own properties of the native object shadow them.
  const native = (pc as unknown as { _pc: object })._pc;
  const read = (name: 'localDescription' | 'remoteDescription') => Reflect.get(Object.getPrototypeOf(native), name, native) as Description;
  let local: Description = null;
  /** The native local description, read once gathering was complete; until the next setLocalDescription. */
  let gathered: Description | undefined;
  let remote: Description = null;
  Object.defineProperty(native, 'localDescription', {
    get: () => {
      if (gathered === undefined && local && pc.iceGatheringState === 'complete') gathered = read('localDescription');
      return gathered ?? local;
    },
  });
  Object.defineProperty(native, 'remoteDescription', { get: () => remote });

  const setLocal = pc.setLocalDescription.bind(pc);
  pc.setLocalDescription = async (description?: RTCLocalSessionDescriptionInit) => {
    const before = local;
    gathered = undefined;
    // Set first: gathering starts inside the call, and its first candidates may come before the call resolves.
    if (description?.type && description.sdp !== undefined) local = { type: description.type, sdp: description.sdp };
    try {
      await setLocal(description as RTCSessionDescriptionInit);
    } catch (error) {
      local = before;
      throw error;
    }
  };
  pc.addEventListener('icecandidate', ({ candidate }) => {
    if (local?.sdp && candidate?.candidate) local = { ...local, sdp: withCandidate(local.sdp, candidate) };
  });

  const setRemote = pc.setRemoteDescription.bind(pc);
  pc.setRemoteDescription = async (description: RTCSessionDescriptionInit) => {
    try {
      await setRemote(description);
      remote = { type: description.type, sdp: description.sdp };
    } catch (error) {
      remote = read('remoteDescription');
      throw error;
    }
  };
  const addCandidate = pc.addIceCandidate.bind(pc);
  pc.addIceCandidate = async (candidate?: RTCIceCandidateInit | null) => {
    await addCandidate(candidate as RTCIceCandidateInit);
    if (remote?.sdp && candidate?.candidate) remote = { ...remote, sdp: withCandidate(remote.sdp, candidate) };
  };
}

/**
 * `sdp` with `candidate` as the last line of its media section (by `sdpMid`, else `sdpMLineIndex`, else the first),
 * where libwebrtc puts one; a candidate already there is not added again.
 */
export function withCandidate(sdp: string, candidate: RTCIceCandidateInit): string {
  const line = `a=${candidate.candidate!.replace(/^a=/, '')}`;
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const [session, ...media] = sdp.split(/(?=^m=)/m);
  if (media.length === 0 || media.some((section) => section.split(/\r?\n/).includes(line))) return sdp;
  let index = media.findIndex((section) => candidate.sdpMid != null && section.split(/\r?\n/).includes(`a=mid:${candidate.sdpMid}`));
  if (index < 0) index = candidate.sdpMLineIndex != null && candidate.sdpMLineIndex < media.length ? candidate.sdpMLineIndex : 0;
  const section = media[index];
  media[index] = section.endsWith(eol) || section.endsWith('\n') ? `${section}${line}${eol}` : `${section}${eol}${line}${eol}`;
  return session + media.join('');
}
