/**
 * Several instances behind one balancer, on one PostgreSQL server (TABAGENT_CLUSTER_SECRET with DATABASE_URL). A
 * session lives on the instance that made its offer; its id and resume token name that node, so any instance that
 * receives a signaling call for it performs it there (internal.ts), and any instance can stream its events (bus.ts).
 * The directory (directory.ts) knows the nodes, their heartbeats and the sessions; the limits on new sessions hold
 * over all of them (admission.ts). A node that dies is `node_gone` to its sessions' clients, which start anew.
 */
import type { Config } from '../config.ts';
import { log, redact } from '../log.ts';
import type { Signaling } from '../signaling/service.ts';
import type { ClusterHooks } from '../session/manager.ts';
import { openPostgres, type PostgresDb } from '../store/postgres.ts';
import { ClusterAdmission } from './admission.ts';
import { ClusterBus } from './bus.ts';
import { ClusterDirectory } from './directory.ts';
import { INTERNAL_PATH, serveInternal } from './internal.ts';
import { RemoteNodes } from './remote.ts';

export { INTERNAL_PATH } from './internal.ts';

export class Cluster {
  readonly remote: RemoteNodes;
  readonly hooks: ClusterHooks;
  readonly #db: PostgresDb;
  readonly #bus: ClusterBus;
  readonly #directory: ClusterDirectory;
  readonly #secret: string;
  #url = '';

  private constructor(readonly nodeId: string, secret: string, db: PostgresDb, bus: ClusterBus, directory: ClusterDirectory, admission: ClusterAdmission) {
    this.#secret = secret;
    this.#db = db;
    this.#bus = bus;
    this.#directory = directory;
    this.remote = new RemoteNodes(nodeId, secret, directory, bus);
    const settle = (what: string) => (error: unknown) => log.warn(`cluster directory: could not ${what}`, { error });
    this.hooks = {
      admit: (session) => admission.admit(session),
      closed: (id) => directory.removeSession(id).catch(settle(`forget session ${redact(id)}`)),
      events: (session, change) => bus.publish({ session: session.id, ...change }),
    };
  }

  /** Connects to the cluster's database (the store's migrations have made its tables) and starts listening. */
  static async open(config: Config & { clusterSecret: string; databaseUrl: string }): Promise<Cluster> {
    const db = await openPostgres(config.databaseUrl, { max: 4 });
    const bus = new ClusterBus(config.databaseUrl);
    await bus.start();
    const directory = new ClusterDirectory(db.pool, config.nodeId);
    const admission = new ClusterAdmission(db.pool, directory, config);
    return new Cluster(config.nodeId, config.clusterSecret, db, bus, directory, admission);
  }

  /** Joins as the node reachable at `url`, heartbeating with its load, `sessions()`. */
  async join(url: string, sessions: () => number): Promise<void> {
    this.#url = url;
    await this.#directory.join(url, sessions);
    log.info('joined the cluster', { node: this.nodeId, url });
  }

  /** Answers another node's call (`INTERNAL_PATH`) on this node's own sessions. */
  serve(request: Request, signaling: Signaling): Promise<Response> {
    return serveInternal(request, this.#secret, signaling.local());
  }

  /** Takes no new sessions from now on: the others know it from the directory. */
  drain(): Promise<void> {
    return this.#directory.drain().catch((error) => log.warn('cluster directory: could not mark this node draining', { error }));
  }

  /** Leaves the cluster and closes its connections. */
  async close(): Promise<void> {
    if (this.#url) await this.#directory.leave().catch((error) => log.warn('cluster directory: could not leave', { error }));
    await this.#bus.close();
    await this.#db.close();
  }
}

