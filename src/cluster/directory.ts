/**
 * The cluster's directory in PostgreSQL (tables of store migration 3): each node with its internal URL, heartbeat,
 * load and whether it drains; each session with its node, address and owner. A node that stops heartbeating is
 * dead after DEAD_AFTER_MS: its sessions' rows go, and signaling for them is answered `node_gone`.
 */
import type pg from 'pg';
import { log } from '../log.ts';

/** How often a node says it is alive (and how loaded it is). */
export const HEARTBEAT_MS = 1_000;
/** A node silent this long is dead; a few heartbeats, so that a busy moment is not a death. */
export const DEAD_AFTER_MS = 5_000;

export interface NodeEntry {
  url: string;
  alive: boolean;
  draining: boolean;
}

export class ClusterDirectory {
  readonly #pool: pg.Pool;
  readonly #self: { id: string };
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(pool: pg.Pool, nodeId: string) {
    this.#pool = pool;
    this.#self = { id: nodeId };
  }

  /**
   * Joins the cluster as the node reachable at `url` (a node restarted with the same id takes its row back), then
   * heartbeats with its load, `load()`.
   */
  async join(url: string, load: () => number): Promise<void> {
    const { id } = this.#self;
    await this.#pool.query(
      `INSERT INTO cluster_nodes (id, url) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET url = excluded.url, sessions = 0, draining = false, started_at = now(), heartbeat_at = now()`,
      [id, url],
    );
    // Sessions this id held before a restart are gone with that process.
    await this.#pool.query('DELETE FROM cluster_sessions WHERE node_id = $1', [id]);
    this.#timer = setInterval(() => void this.#beat(load()), HEARTBEAT_MS);
    this.#timer.unref?.();
  }

  /** A node's entry, or undefined when the directory has never heard of it (or forgot it, long dead). */
  async node(id: string): Promise<NodeEntry | undefined> {
    const { rows } = await this.#pool.query<{ url: string; alive: boolean; draining: boolean }>(
      `SELECT url, heartbeat_at > now() - make_interval(secs => $2) AS alive, draining FROM cluster_nodes WHERE id = $1`,
      [id, DEAD_AFTER_MS / 1000],
    );
    return rows[0];
  }

  /**
   * Records a new session of this node from `ip`, unless `ip` already has `limit` sessions on the live nodes: then
   * false. Exact under concurrency: the check and the record happen under a lock on the address, so two nodes
   * admitting the same address at once cannot both take its last place.
   */
  async reserveSession(session: { id: string; ip: string; owner: string }, limit: number): Promise<boolean> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tabagent-address:${session.ip}`]);
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM cluster_sessions s JOIN cluster_nodes n ON n.id = s.node_id
         WHERE s.ip = $1 AND n.heartbeat_at > now() - make_interval(secs => $2)`,
        [session.ip, DEAD_AFTER_MS / 1000],
      );
      const admitted = rows[0].n < limit;
      if (admitted) {
        await client.query('INSERT INTO cluster_sessions (id, node_id, ip, owner) VALUES ($1, $2, $3, $4)', [
          session.id,
          this.#self.id,
          session.ip,
          session.owner,
        ]);
      }
      await client.query('COMMIT');
      return admitted;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async removeSession(id: string): Promise<void> {
    await this.#pool.query('DELETE FROM cluster_sessions WHERE id = $1', [id]);
  }

  /** This node takes no new sessions: the others, and the balancer's readiness check, know. */
  async drain(): Promise<void> {
    await this.#pool.query('UPDATE cluster_nodes SET draining = true WHERE id = $1', [this.#self.id]);
  }

  /** Leaves the cluster: no heartbeat, no row, none of its sessions. */
  async leave(): Promise<void> {
    clearInterval(this.#timer);
    await this.#pool.query('DELETE FROM cluster_sessions WHERE node_id = $1', [this.#self.id]);
    await this.#pool.query('DELETE FROM cluster_nodes WHERE id = $1', [this.#self.id]);
  }

  /** A heartbeat, and the sweep every node shares: the sessions of dead nodes go, and long-dead nodes too. */
  async #beat(sessions: number): Promise<void> {
    try {
      await this.#pool.query('UPDATE cluster_nodes SET heartbeat_at = now(), sessions = $2 WHERE id = $1', [this.#self.id, sessions]);
      await this.#pool.query(
        `DELETE FROM cluster_sessions WHERE node_id NOT IN
           (SELECT id FROM cluster_nodes WHERE heartbeat_at > now() - make_interval(secs => $1))`,
        [DEAD_AFTER_MS / 1000],
      );
      await this.#pool.query(`DELETE FROM cluster_nodes WHERE heartbeat_at < now() - make_interval(secs => $1)`, [(60 * DEAD_AFTER_MS) / 1000]);
      await this.#pool.query('DELETE FROM cluster_rate_limits WHERE expire < $1', [Date.now()]);
    } catch (error) {
      log.warn('cluster heartbeat failed', { error });
    }
  }
}
