/**
 * The soak (bench/soak.ts, `npm run soak`), shortened: connect / request / disconnect cycles against a server
 * process, with clients in processes of their own and a fifth of them SIGKILLed mid-stream. Afterwards sessions,
 * peers, requests, handles, timers and threads are back where they started, memory stayed within bounds, and the
 * server, shut down with streams running, exits by itself. Each check's numbers are in the failure message.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runSoak } from '../bench/soak/harness.ts';
import { DEFAULTS, type SoakOptions } from '../bench/soak/options.ts';
import { format } from '../bench/soak/report.ts';

const soak = suite('soak');

soak('60 cycles, 12 of them SIGKILLed mid-stream: everything returns to zero, memory stays bounded, the server exits by itself', async () => {
  const options: SoakOptions = { ...DEFAULTS, cycles: 60, warmupCycles: 15, concurrency: 3, quiet: true };
  const result = await runSoak(options);
  const report = format(result);
  assert.ok(result.report, report);
  assert.equal(result.checks.filter((check) => !check.ok), [], report);
  assert.is(result.report.outcomes.killed, 12);
});

soak.run();
