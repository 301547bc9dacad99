/**
 * Cross-instance events over PostgreSQL LISTEN/NOTIFY, on a connection of their own: a session's signaling events
 * (its server's ICE candidates and states), published by the node that holds the session, for a node that holds a
 * client's `webrtc.events` stream for it. NOTIFY's limits hold here: a payload is at most 8,000 bytes (a candidate is
 * a few hundred), nothing is replayed (a follower asks the owner for what came before, then follows), and it does not
 * pass through a transaction-pooling proxy (PgBouncer in transaction mode): point DATABASE_URL past one.
 */
import pg from 'pg';
import { log } from '../log.ts';
import type { NumberedEvent } from '../session/events.ts';

const CHANNEL = 'tabagent_session_events';
/** After the listening connection breaks, how long before it tries again. */
const RECONNECT_MS = 1_000;

/** A session's event, or the end of its current event log (its peer was replaced, or it closed). */
export type BusMessage = { session: string } & ({ numbered: NumberedEvent } | { end: true });

export class ClusterBus {
  readonly #url: string;
  readonly #listeners = new Map<string, Set<(message: BusMessage) => void>>();
  #client: pg.Client | undefined;
  /** The last publish: each waits for the one before, so they reach the server in order. */
  #publishing = Promise.resolve();
  #closed = false;

  /** One connection of the bus's own, to `url`, listens and publishes. */
  constructor(url: string) {
    this.#url = url;
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url, application_name: 'tabagent-bus' });
    client.on('notification', ({ payload }) => payload && this.#deliver(payload));
    client.on('error', (error) => this.#lost(client, error));
    client.on('end', () => this.#lost(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.#client = client;
  }

  /**
   * One after the other on one connection, so a session's events arrive in the order they were published (a pool
   * would race them). While the connection is down, events are dropped: a follower notices the gap by their ids and
   * asks the backlog for them.
   */
  publish(message: BusMessage): void {
    const payload = JSON.stringify(message);
    this.#publishing = this.#publishing.then(() =>
      this.#client?.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]).then(
        () => undefined,
        (error: unknown) => log.warn('cluster event not published', { error }),
      ),
    );
  }

  /** Calls `listener` with each message about `session` until the returned function is called. */
  subscribe(session: string, listener: (message: BusMessage) => void): () => void {
    let listeners = this.#listeners.get(session);
    if (!listeners) this.#listeners.set(session, (listeners = new Set()));
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.#listeners.delete(session);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client?.end().catch(() => {});
  }

  #deliver(payload: string): void {
    let message: BusMessage;
    try {
      message = JSON.parse(payload) as BusMessage;
    } catch {
      return; // not ours
    }
    for (const listener of this.#listeners.get(message.session) ?? []) listener(message);
  }

  #lost(client: pg.Client, error?: Error): void {
    if (this.#client !== client || this.#closed) return;
    this.#client = undefined;
    log.warn('the cluster event connection broke; reconnecting', { error });
    client.end().catch(() => {});
    const retry = () => this.start().catch(() => setTimeout(retry, RECONNECT_MS).unref?.());
    setTimeout(retry, RECONNECT_MS).unref?.();
  }
}
