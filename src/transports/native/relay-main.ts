/** The native messaging host's own entry, bundled into `dist/native-host.mjs` by `npm run build` (see relay.ts). */
import { runRelay } from './relay.ts';

// Explicitly: Chrome may hold stdin open after the server has gone, which would keep the process alive.
process.exit(await runRelay());
