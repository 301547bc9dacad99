/**
 * A binary fix for a data race in @roamhq/wrtc 0.10.0 that crashes the process holding the peers, until wrtc
 * ships its own (docs/DESIGN.md, "wrtc's send race"; drop this file and its callers then).
 *
 * The race: when the remote peer aborts, libwebrtc's signaling thread runs RTCDataChannel::OnStateChange →
 * CleanupInternals, which clears the channel's `_jingleDataChannel` pointer without a lock, while `send()` on the
 * JS thread reads that pointer once to check the state and again to send: the second read can be null (SIGSEGV).
 * The fix: CleanupInternals keeps its reference (the pointer then never changes until the JS object is collected,
 * and a late `send()` finds the channel `closed` and throws InvalidStateError), and OnPeerConnectionClosed, which
 * took "pointer still set" to mean "not closed yet", asks the channel's state instead (else the event loops of
 * channels closed before the peer leak, with their peer's threads).
 *
 * wrtc's loader (lib/binding.js) tries `@roamhq/wrtc/build-<platform>-<arch>/wrtc.node` before the platform
 * package, so the patched copy goes there, written from the published binary only when its sha256 is the known
 * one, and checked by its own. The published file is never touched. `npm ci` runs this (scripts/patch-wrtc.ts,
 * the postinstall); so does the first import of wrtc (src/peer/wrtc.ts), for installs that ran no scripts.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { log } from '../log.ts';

interface BytePatch {
  /** File offset (in this build, also the virtual address) of the first byte. */
  offset: number;
  /** The bytes there in the published binary, hex. */
  from: string;
  /** What they become, hex; as long as `from`. */
  to: string;
}

interface KnownBinary {
  /** What it is, for messages: the package and version that ship it. */
  name: string;
  platform: NodeJS.Platform;
  arch: string;
  sha256: string;
  patchedSha256: string;
  patches: BytePatch[];
}

/** x86-64 as assembled for these patches: `int3` fills bytes no longer reached. */
const INT3 = 'cc';

export const KNOWN_BINARIES: KnownBinary[] = [
  {
    name: '@roamhq/wrtc-linux-x64@0.10.0',
    platform: 'linux',
    arch: 'x64',
    sha256: 'a629f3ee4aa32a097361270f719007e62325068dac347086218027ce4274302f',
    patchedSha256: '580a3645be88459c64e900e478befea4921d86d91cc0605c4aa18f2958be3616',
    patches: [
      {
        // RTCDataChannel::CleanupInternals()+0x10a. Was: `mov 0x1d0(%rbx),%rdi; test %rdi,%rdi; je +6;
        // mov (%rdi),%rax; call *0x8(%rax)` (Release) `; movq $0,0x1d0(%rbx)`: drop the reference, clear the
        // pointer. Now: `jmp +0x1b` to its epilogue, keeping both; the bytes skipped hold the tail of the new
        // OnPeerConnectionClosed below: `add $0x50,%rdi; mov (%rdi),%rax; jmp *0x20(%rax)`, the channel's
        // EventLoop::Stop(), as the original made it.
        offset: 0x20599a,
        from: '488bbbd00100004885ff7406488b07ff500848c783d001000000000000',
        to: 'eb1b' + '4883c750488b07ff6020' + INT3.repeat(17),
      },
      {
        // RTCDataChannel::OnPeerConnectionClosed() and its padding. Was: `cmpq $0,0x1d0(%rdi); je ret;` then
        // Stop(). Now: `push %rdi; mov 0x1d0(%rdi),%rdi; test %rdi,%rdi; je out; mov (%rdi),%rax;
        // call *0x88(%rax)` (state()) `; pop %rdi; cmp $3,%eax` (kClosed) `; jne <Stop tail above>; ret;
        // out: pop %rdi; ret`. A closed channel was stopped, or will be, by its own close event.
        offset: 0x2059c0,
        from: '4883bfd001000000740b488b47504883c750ff6020c3662e0f1f840000000000',
        to: '57488bbfd00100004885ff7410488b07ff90880000005f83f80375c0c35fc3' + INT3,
      },
    ],
  },
];

export type PatchStatus = 'patched' | 'already patched' | 'unrecognised' | 'failed';

export interface PatchOutcome {
  status: PatchStatus;
  /** The binary wrtc loads: the patched copy, or whatever is there instead. */
  binary?: string;
  /** Why it is not patched, for a person to act on. */
  detail?: string;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The patched bytes of a known binary; throws when a site does not hold what the table says. */
export function applyPatches(bytes: Uint8Array, known: KnownBinary): Buffer {
  const patched = Buffer.from(bytes);
  for (const { offset, from, to } of known.patches) {
    const found = patched.subarray(offset, offset + from.length / 2).toString('hex');
    if (found !== from || to.length !== from.length) throw new Error(`${known.name}: unexpected bytes at 0x${offset.toString(16)}: ${found}`);
    patched.write(to, offset, 'hex');
  }
  return patched;
}

/**
 * Makes sure wrtc will load the patched binary: writes it if it is missing, leaves alone a file it does not know.
 * Synchronous and idempotent: safe before every first import of wrtc.
 */
export function patchWrtc(wrtcDir = locateWrtc()): PatchOutcome {
  if (!wrtcDir) return { status: 'unrecognised', detail: '@roamhq/wrtc is not installed' };
  const triple = `${process.platform}-${process.arch}`;
  const target = path.join(wrtcDir, `build-${triple}`, 'wrtc.node');
  const candidates = KNOWN_BINARIES.filter((known) => known.platform === process.platform && known.arch === process.arch);
  const expected = candidates.map((known) => `${known.name} (sha256 ${known.sha256})`).join(' or ') || `none for ${triple}`;
  if (existsSync(target)) {
    const found = sha256(readFileSync(target));
    if (candidates.some((known) => known.patchedSha256 === found)) return { status: 'already patched', binary: target };
    const patched = candidates.map((known) => `the patched ${known.name} (sha256 ${known.patchedSha256})`).join(' or ') || `none for ${triple}`;
    return { status: 'unrecognised', binary: target, detail: `${target} has sha256 ${found}, expected ${patched}; left as it is` };
  }
  let published: string;
  try {
    published = createRequire(path.join(wrtcDir, 'package.json')).resolve(`@roamhq/wrtc-${triple}/wrtc.node`);
  } catch {
    return { status: 'unrecognised', detail: `no @roamhq/wrtc-${triple} binary to patch; expected ${expected}` };
  }
  const bytes = readFileSync(published);
  const found = sha256(bytes);
  const known = candidates.find((candidate) => candidate.sha256 === found);
  if (!known) return { status: 'unrecognised', binary: published, detail: `${published} has sha256 ${found}, expected ${expected}` };
  const patched = applyPatches(bytes, known);
  const result = sha256(patched);
  if (result !== known.patchedSha256) {
    return { status: 'failed', binary: published, detail: `the patched ${known.name} has sha256 ${result}, not ${known.patchedSha256}` };
  }
  // Another process may be doing the same: each writes its own temporary file, and the rename is atomic.
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(temporary, patched, { mode: 0o755 });
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    return { status: 'failed', binary: published, detail: `cannot write ${target}: ${(error as Error).message}` };
  }
  return { status: 'patched', binary: target };
}

function locateWrtc(): string | undefined {
  try {
    return path.dirname(createRequire(import.meta.url).resolve('@roamhq/wrtc/package.json'));
  } catch {
    return undefined;
  }
}

/** Set once this process or its parent has said how the patch went; the peer processes inherit it and stay quiet. */
const REPORTED = 'TABAGENT_WRTC_PATCH_REPORTED';
let outcome: PatchOutcome | undefined;

/** `patchWrtc()` once per process; a binary left unpatched is reported once, with what was expected. */
export function ensureWrtcPatched(): PatchOutcome {
  if (outcome) return outcome;
  try {
    outcome = patchWrtc();
  } catch (error) {
    outcome = { status: 'failed', detail: (error as Error).message };
  }
  if (!process.env[REPORTED]) {
    process.env[REPORTED] = outcome.status;
    if (outcome.status === 'patched') log.info('wrote wrtc with the send-race fix', { binary: outcome.binary });
    else if (outcome.status !== 'already patched') {
      log.warn(`wrtc runs unpatched: ${outcome.detail}. A client that closes its peer while the server sends can crash the peer process (see docs/DESIGN.md, "wrtc's send race")`);
    }
  }
  return outcome;
}
