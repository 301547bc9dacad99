/** Which native messaging mode the command line asks for, if any (main.ts serves HTTP otherwise). */
export type NativeMode = 'host' | 'install';

/**
 * `--native-host` runs the host; so does a first argument that is an extension origin, which is how Chrome
 * starts a host whose manifest points straight at it. `--install-native-host` writes the manifest.
 */
export function nativeMode(args: readonly string[]): NativeMode | undefined {
  if (args.includes('--install-native-host')) return 'install';
  if (args.includes('--native-host') || args[0]?.startsWith('chrome-extension://')) return 'host';
  return undefined;
}

/**
 * The argument a native host starts the server with: such a server is there for native messaging alone, so if
 * another host's server got the native socket first, it leaves rather than serve nobody.
 */
export const STARTED_BY_HOST = '--started-by-native-host';
