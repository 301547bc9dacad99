/**
 * The limits on new sessions that hold over the whole cluster, not per instance: new sessions per address per
 * minute (rate-limiter-flexible's PostgreSQL limiter, on the table of store migration 3) and sessions per address
 * (counted in the directory, where the session is recorded as it is admitted). An instance's own limits still
 * hold beside them.
 */
import type pg from 'pg';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../errors.ts';
import type { ClusterDirectory } from './directory.ts';

export class ClusterAdmission {
  readonly #rate: RateLimiterPostgres | undefined;

  constructor(
    pool: pg.Pool,
    private readonly directory: ClusterDirectory,
    private readonly limits: { sessionRatePerMinute: number; maxSessionsPerIp: number },
  ) {
    this.#rate =
      limits.sessionRatePerMinute > 0
        ? new RateLimiterPostgres({
            storeClient: pool,
            storeType: 'pool',
            tableName: 'cluster_rate_limits',
            tableCreated: true,
            // Expired rows go with the directory's sweep, not a timer of the limiter's own.
            clearExpiredByTimeout: false,
            keyPrefix: 'new-sessions',
            points: limits.sessionRatePerMinute,
            duration: 60,
          })
        : undefined;
  }

  /**
   * Admits the new session `session` and records it in the directory, or throws the AppError that refuses it:
   * `rate_limited`, or `session_limit`.
   */
  async admit(session: { id: string; ip: string; owner: string }): Promise<void> {
    const { ip } = session;
    if (this.#rate) {
      try {
        await this.#rate.consume(ip);
      } catch (outcome) {
        if (!(outcome instanceof RateLimiterRes)) throw new AppError('backend_unavailable', 'The cluster directory (DATABASE_URL) does not answer', { cause: outcome });
        const wait = Math.max(1, outcome.msBeforeNext);
        throw new AppError('rate_limited', `More than ${this.limits.sessionRatePerMinute} new sessions a minute from this address; retry in ${Math.ceil(wait / 1000)} s`, {
          details: { retry_after_ms: wait },
        });
      }
    }
    if (!(await this.directory.reserveSession(session, this.limits.maxSessionsPerIp))) {
      throw new AppError('session_limit', `This address already has ${this.limits.maxSessionsPerIp} sessions across the cluster; close one first`);
    }
  }
}
