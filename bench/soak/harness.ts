/**
 * Runs a soak: forks the server process (bench/soak/server.ts), takes its report, and checks what only an outside
 * process can: that it did not crash, and that once shut down it ended by itself, promptly (wrtc has kept
 * processes alive after their peers closed, and crashed natively around closes).
 */
import { fork } from 'node:child_process';
import type { SoakOptions } from './options.ts';
import type { Check, ServerReport, SoakResult, ToHarness } from './report.ts';

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const child = fork(new URL('./server.ts', import.meta.url), [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, SOAK_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let phase = 'starting';
  let report: ServerReport | undefined;
  let reportedAt = 0;
  let hung: ReturnType<typeof setTimeout> | undefined;
  child.on('message', (message: ToHarness) => {
    if (message.type === 'phase') phase = message.phase;
    if (message.type !== 'report') return;
    report = message.report;
    reportedAt = Date.now();
    // It should end on its own; give it twice the bound to say what keeps it alive, then end it.
    hung = setTimeout(() => child.kill('SIGKILL'), 2 * options.exitWithinMs);
  });
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (...how) => resolve(how)));
  clearTimeout(hung);
  const afterReportMs = report ? Date.now() - reportedAt : undefined;

  const checks: Check[] = [...(report?.checks ?? [])];
  const how = signal ? `killed by ${signal}` : `exit code ${code}`;
  if (!report) checks.push({ name: 'server process ran to the end', ok: false, detail: `it ended (${how}) during ${phase}` });
  else {
    checks.push({ name: 'server process exited cleanly', ok: code === 0 && !signal, detail: how });
    checks.push({
      name: `server process ended by itself within ${options.exitWithinMs} ms of its shutdown`,
      ok: afterReportMs! <= options.exitWithinMs && !signal,
      detail: signal === 'SIGKILL' ? `still running after ${afterReportMs} ms; killed` : `${afterReportMs} ms; left then: ${report.leftAfterShutdown.join(', ') || 'nothing'}`,
    });
  }
  return { ok: checks.every((c) => c.ok), report, exit: { code, signal, afterReportMs }, checks };
}
