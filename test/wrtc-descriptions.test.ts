/**
 * A wrtc peer's descriptions come from copies kept in JavaScript (src/peer/wrtc-descriptions.ts), never from the
 * native description libwebrtc changes while it gathers: what was set plus each candidate since, and the native one
 * once nothing can change it. Real wrtc peers, host candidates only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withCandidate } from '../src/peer/wrtc-descriptions.ts';
import { createWrtcPeer } from '../src/peer/wrtc.ts';

const test = suite('wrtc descriptions');

const SDP = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'a=mid:1', ''].join('\r\n');
const CANDIDATE = 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host';

test('a candidate goes last into the media section its mid names, with the line ends of the description', () => {
  const sdp = withCandidate(SDP, { candidate: CANDIDATE, sdpMid: '1' });
  assert.ok(sdp.endsWith(`a=mid:1\r\na=${CANDIDATE}\r\n`), sdp);
  assert.not.ok(sdp.split('m=application')[0].includes(CANDIDATE));
});

test('without a mid the line index picks the section, and without either the first; a candidate is added once', () => {
  const byIndex = withCandidate(SDP, { candidate: `a=${CANDIDATE}`, sdpMLineIndex: 0 });
  assert.ok(byIndex.split('m=application')[0].endsWith(`a=mid:0\r\na=${CANDIDATE}\r\n`), byIndex);
  assert.is(withCandidate(byIndex, { candidate: CANDIDATE, sdpMid: '1' }), byIndex);
  const first = withCandidate(SDP.replaceAll('\r\n', '\n'), { candidate: CANDIDATE, sdpMLineIndex: 7 });
  assert.ok(first.split('m=application')[0].endsWith(`a=mid:0\na=${CANDIDATE}\n`), first);
  assert.is(withCandidate('v=0\r\n', { candidate: CANDIDATE }), 'v=0\r\n', 'no media section: nothing to add to');
});

/** A candidate line up to its address and type: libwebrtc's own description leaves out the `ufrag` events carry. */
const address = (candidate: RTCIceCandidate) => candidate.candidate.split(' generation')[0];

/** Resolves once `pc` has gathered every candidate; the candidates its events carried. */
function gathered(pc: RTCPeerConnection): Promise<RTCIceCandidate[]> {
  const seen: RTCIceCandidate[] = [];
  return new Promise((resolve) => {
    pc.addEventListener('icecandidate', ({ candidate }) => (candidate ? seen.push(candidate) : resolve(seen)));
  });
}

test('while gathering, the local description is what was set plus each candidate so far; once complete, the native one', async () => {
  const pc = createWrtcPeer({ iceServers: [] });
  try {
    pc.createDataChannel('x');
    const offer = await pc.createOffer();
    const candidates = gathered(pc);
    const during: string[] = [];
    pc.addEventListener('icecandidate', ({ candidate }) => candidate && during.push(pc.localDescription!.sdp));
    await pc.setLocalDescription(offer);
    const ufrag = /^a=ice-ufrag:.*$/m.exec(offer.sdp!)![0];
    assert.ok(pc.localDescription!.sdp.includes(ufrag), 'the offer that was set');
    const all = await candidates;
    assert.ok(all.length > 0, 'host candidates gathered');
    during.forEach((sdp, i) => assert.ok(sdp.includes(address(all[i])), `the description at candidate ${i} holds it`));
    assert.is(pc.iceGatheringState, 'complete');
    const complete = pc.localDescription!.sdp;
    for (const candidate of all) assert.ok(complete.includes(address(candidate)), `${candidate.candidate} in the complete description`);
    assert.is(pc.localDescription!.type, 'offer');
  } finally {
    pc.close();
  }
});

test('the remote description is what was applied plus the candidates added; a failed apply leaves the one libwebrtc kept', async () => {
  const offerer = createWrtcPeer({ iceServers: [] });
  const answerer = createWrtcPeer({ iceServers: [] });
  try {
    offerer.createDataChannel('x');
    const candidates = gathered(offerer);
    const offer = await offerer.createOffer();
    await offerer.setLocalDescription(offer);
    const [candidate] = await candidates;
    await answerer.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    assert.is(answerer.remoteDescription!.sdp, offer.sdp);
    await answerer.addIceCandidate(candidate);
    assert.ok(answerer.remoteDescription!.sdp.includes(address(candidate)));

    await answerer.setRemoteDescription({ type: 'offer', sdp: 'garbage' }).then(
      () => assert.unreachable('garbage applied'),
      () => {},
    );
    assert.ok(answerer.remoteDescription?.sdp.includes('a=mid:'), 'the description applied before stays');
  } finally {
    offerer.close();
    answerer.close();
  }
});

test.run();
