/** The client library: `import { connect } from 'tabagent-webrtc/client'`. */
export { connect, TabAgentClient, type ActionMethods, type ConnectOptions, type ReconnectOptions, type TabAgent } from './connect.ts';
export { RequestChannel, type CallOptions, type Chunk, type ConnectionState, type Streamed } from './request-channel.ts';
export { createSignalingClient, type SignalingClient, type SignalingOptions } from './signaling.ts';
export { AppError, type ErrorCode } from '../errors.ts';
export type { Action, RequestInput, ResponseOf, StreamingAction } from '../protocol/registry.ts';
export type { EventName, EventData } from '../protocol/events.ts';
export type { AppRouter } from '../../routers/index.ts';
