/**
 * `npm run soak`: connect / request / disconnect churn against one server process, with clients SIGKILLed
 * mid-stream, then checks that everything comes back to zero, that memory stays bounded after warm-up, and that
 * the server shuts down and exits by itself (bench/soak/: harness.ts, server.ts, clients.ts, client.ts).
 *
 *   npm run soak -- --cycles 1000 --concurrency 4 --kill-fraction 0.2
 *   npm run soak -- --peer-backend node-datachannel     (the server's peers on libdatachannel; default wrtc)
 *
 * Knobs (argv, or SOAK_<NAME> in the environment): see bench/soak/options.ts. Exits 1 when a check fails.
 */
import { runSoak } from './soak/harness.ts';
import { parseOptions } from './soak/options.ts';
import { format } from './soak/report.ts';

const result = await runSoak(parseOptions(process.argv.slice(2), process.env));
console.log(format(result));
process.exitCode = result.ok ? 0 : 1;
