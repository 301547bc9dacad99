/** The native messaging host's own entry, bundled into `dist/native-host.mjs` by `npm run build` (see relay.ts). */
import { runRelay } from './relay.ts';

process.exitCode = await runRelay();
