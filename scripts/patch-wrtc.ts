/**
 * `npm ci`'s postinstall: writes wrtc's patched binary (src/peer/wrtc-patch.ts) as soon as wrtc is installed.
 * Never fails the install: a binary it cannot patch is reported, and the server says so again when it starts.
 */
import { ensureWrtcPatched } from '../src/peer/wrtc-patch.ts';

ensureWrtcPatched();
