/**
 * The sessions of the other nodes, as the signaling service sees them (`RemoteSessions`): an operation on one is
 * performed by the node that holds it, which the session id itself names; its events come over the bus.
 */
import { AppError } from '../errors.ts';
import type { Identity } from '../protocol/handlers.ts';
import type { NumberedEvent } from '../session/events.ts';
import { otherNode, type EventsArgs, type RemoteOperation, type RemoteSessions } from '../signaling/service.ts';
import type { BusMessage, ClusterBus } from './bus.ts';
import type { ClusterDirectory, NodeEntry } from './directory.ts';
import { callNode, nodeGone } from './internal.ts';

/** While following a node's session, how often to check that the node is still alive. */
const LIVENESS_MS = 2_000;
/**
 * How long a node's directory entry is used before it is read again: a heartbeat. Forwarded calls then cost no query
 * of their own; a node that died meanwhile fails the call itself (`node_gone` too).
 */
const ENTRY_TTL_MS = 1_000;

export class RemoteNodes implements RemoteSessions {
  /** Nodes the directory knows (so as many as there are): an id it does not know is asked about each time. */
  readonly #entries = new Map<string, { entry: NodeEntry; readAt: number }>();

  constructor(
    private readonly self: string,
    private readonly secret: string,
    private readonly directory: ClusterDirectory,
    private readonly bus: ClusterBus,
  ) {}

  holder(id: string): string | undefined {
    return otherNode(id, this.self);
  }

  async call<T>(node: string, operation: RemoteOperation, identity: Identity | undefined, args: object): Promise<T> {
    return callNode<T>(await this.urlOf(node), this.secret, operation, identity, args);
  }

  /**
   * Subscribes first, then asks the node for what came before: what the bus delivers meanwhile is in the backlog or
   * after it, and the ids (consecutive within a log) tell which; a gap (an event the bus dropped) is asked for again.
   * Ends with the log (a resume, or the session's end) or with the node's death.
   */
  async *follow(node: string, args: EventsArgs, identity: Identity | undefined, signal?: AbortSignal): AsyncGenerator<NumberedEvent> {
    const arrived: BusMessage[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.bus.subscribe(args.sessionId, (message) => {
      arrived.push(message);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let cursor = args.after;
      let backlog = await this.backlog(node, identity, args, cursor);
      while (!signal?.aborted) {
        for (const numbered of backlog.events) {
          cursor = numbered.id;
          yield numbered;
        }
        if (backlog.ended) return;
        backlog = { events: [], ended: false };
        for (const message of arrived.splice(0)) {
          if ('end' in message) return;
          if (message.numbered.id <= cursor) continue;
          if (message.numbered.id > cursor + 1) {
            backlog = await this.backlog(node, identity, args, cursor);
            break;
          }
          cursor = message.numbered.id;
          yield message.numbered;
        }
        if (backlog.events.length > 0 || backlog.ended || arrived.length > 0) continue;
        const waited = await new Promise<'woken' | 'quiet'>((resolve) => {
          const timer = setTimeout(() => resolve('quiet'), LIVENESS_MS);
          wake = () => {
            clearTimeout(timer);
            resolve('woken');
          };
        });
        wake = undefined;
        if (waited === 'quiet' && !(await this.directory.node(node))?.alive) return;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  private backlog(node: string, identity: Identity | undefined, args: EventsArgs, after: number) {
    return this.call<{ events: NumberedEvent[]; ended: boolean }>(node, 'backlog', identity, { ...args, after });
  }

  private async urlOf(node: string): Promise<string> {
    const entry = await this.entryOf(node);
    if (!entry?.alive) throw nodeGone();
    return entry.url;
  }

  private async entryOf(node: string): Promise<NodeEntry | undefined> {
    const cached = this.#entries.get(node);
    if (cached && performance.now() - cached.readAt < ENTRY_TTL_MS) return cached.entry;
    const entry = await this.directory.node(node).catch((cause: unknown) => {
      throw new AppError('backend_unavailable', 'The cluster directory (DATABASE_URL) does not answer', { cause });
    });
    if (entry) this.#entries.set(node, { entry, readAt: performance.now() });
    else this.#entries.delete(node);
    return entry;
  }
}
