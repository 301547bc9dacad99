/**
 * The churn soak (bench/soak.ts, `npm run soak`) as CI runs it: 1,000 connect / stream / close cycles against a
 * server process, with clients in processes of their own; a third close their peer abruptly mid-stream (an SCTP
 * ABORT reaching the server while it sends, where wrtc's send race struck) and a tenth are SIGKILLed mid-stream.
 * The server runs as its defaults say (its peers in its own process, where a native crash would end it): no crash,
 * of the server or of a peer process, and no cycle fails (every offer answered); afterwards sessions, peers,
 * requests, handles, timers, threads and file descriptors are back where they were, memory stayed within bounds,
 * and the server, shut down with streams running, exits by itself. Each check's numbers are in the failure message.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runSoak } from '../bench/soak/harness.ts';
import { DEFAULTS, type SoakOptions } from '../bench/soak/options.ts';
import { format } from '../bench/soak/report.ts';

const soak = suite('soak');

soak('1,000 cycles, a third closed abruptly and a tenth killed mid-stream: no crash, no failure, everything back to its baseline', async () => {
  const options: SoakOptions = { ...DEFAULTS, cycles: 1_000, quiet: true };
  const result = await runSoak(options);
  const report = format(result);
  console.log(report);
  assert.ok(result.report, report);
  assert.equal(result.checks.filter((check) => !check.ok), [], report);
  const { outcomes } = result.report;
  assert.ok(outcomes.aborted >= 300 && outcomes.killed >= 90, `${outcomes.aborted} abrupt closes, ${outcomes.killed} kills`);
});

soak.run();
