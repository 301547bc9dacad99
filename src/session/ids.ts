/**
 * Which node holds a session: session ids and resume tokens start with it (`<node>.<random>`), so that any instance
 * can route a session's signaling to its owner without asking anyone. The random part alone is the capability.
 */
import { randomBytes } from 'node:crypto';
import { NODE_ID } from '../config.ts';

/** A new id (or token) of `bytes` random bytes on node `nodeId`. */
export function idOnNode(nodeId: string, bytes: number): string {
  return `${nodeId}.${randomBytes(bytes).toString('base64url')}`;
}

/** The node an id or token names, or undefined when it names none (an id from before nodes, or garbage). */
export function nodeOf(id: string): string | undefined {
  const dot = id.indexOf('.');
  const node = dot > 0 ? id.slice(0, dot) : '';
  return NODE_ID.test(node) ? node : undefined;
}
