import path from 'node:path';

/** The built native host (src/native/relay.ts bundled by `npm run build`, which `npm ci` runs), as Chrome starts it. */
export const NATIVE_HOST_BUNDLE = path.resolve(import.meta.dirname, '../../dist/native-host.mjs');
