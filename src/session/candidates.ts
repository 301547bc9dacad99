import { AppError } from '../errors.ts';

/**
 * Client candidates per peer, held before the answer or applied after it; a real client sends a handful. Each
 * applied one makes ICE checks against every local candidate on the network thread that all sessions share: a
 * thousand on one session stalled every other session for seconds.
 */
const MAX_CANDIDATES = 64;

/**
 * The client's ICE candidates for one server peer: held until the answer is applied (libwebrtc refuses them before
 * a remote description), applied after, at most MAX_CANDIDATES of each. A resume's new peer starts a new one.
 */
export class PeerCandidates {
  private held: RTCIceCandidateInit[] = [];
  /** Applied, or being applied. */
  private taken = 0;

  /**
   * @param rejected the AppError that answers a candidate the peer refused (or the session's end meanwhile)
   * @param applied told of each candidate the peer took
   */
  constructor(
    private readonly pc: RTCPeerConnection,
    private readonly rejected: (cause: unknown) => AppError,
    private readonly applied: () => void,
  ) {}

  /** Holds `candidate` while the peer has no remote description, else applies it. */
  async add(candidate: RTCIceCandidateInit): Promise<void> {
    if (this.pc.remoteDescription) return this.apply(candidate);
    if (this.held.length >= MAX_CANDIDATES) throw new AppError('conflict', `More than ${MAX_CANDIDATES} candidates before an answer`);
    this.held.push(candidate);
  }

  /** The answer is applied: applies what was held. A refused one is `onRefused`'s, not the answer's failure. */
  async applyHeld(onRefused: (error: AppError) => void): Promise<void> {
    const held = this.held.splice(0);
    await Promise.all(held.map((candidate) => this.apply(candidate).catch(onRefused)));
  }

  private async apply(candidate: RTCIceCandidateInit): Promise<void> {
    // Counted before the await, so concurrent calls cannot all pass the check; a rejected one gives its place back.
    if (this.taken >= MAX_CANDIDATES) {
      throw new AppError('conflict', `More than ${MAX_CANDIDATES} candidates for one peer`, { details: { field: 'candidate' } });
    }
    this.taken++;
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (cause) {
      this.taken--;
      throw this.rejected(cause);
    }
    this.applied();
  }
}
