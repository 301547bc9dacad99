/** The server library: `import { createApp, loadConfig } from 'tabagent-webrtc'`. */
export { createApp, VERSION, type App, type AppDeps } from './app.ts';
export { loadConfig, configSchema, ENV_VARS, type Config, type ConfigInput } from './config.ts';
export { AppError, ERROR_CODES, type ErrorCode } from './errors.ts';
export { registry, actions, type Action, type RequestInput, type RequestParams, type ResponseOf } from './protocol/registry.ts';
export type { Handlers, Handler, CallContext } from './protocol/handlers.ts';
export type { ParamsStore, Settings } from './engine/index.ts';
export type { Store } from './store/types.ts';
export type { AppRouter } from '../routers/index.ts';
