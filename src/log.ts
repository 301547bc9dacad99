/**
 * Logs go to stderr, always: in native-messaging mode stdout carries protocol frames only.
 * `LOG_LEVEL=debug|info|warn|error|silent` (default info).
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = keyof typeof LEVELS;

const envLevel = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.LOG_LEVEL;
let threshold: number = LEVELS[(envLevel as Level) in LEVELS ? (envLevel as Level) : 'info'];

export function setLogLevel(level: Level): void {
  threshold = LEVELS[level];
}

function write(level: Exclude<Level, 'silent'>, message: string, fields?: Record<string, unknown>): void {
  if (LEVELS[level] < threshold) return;
  const suffix = fields ? ' ' + JSON.stringify(fields, errorsAsText) : '';
  console.error(`${new Date().toISOString()} ${level.padEnd(5)} ${message}${suffix}`);
}

function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value;
}

export const log = {
  debug: (message: string, fields?: Record<string, unknown>) => write('debug', message, fields),
  info: (message: string, fields?: Record<string, unknown>) => write('info', message, fields),
  warn: (message: string, fields?: Record<string, unknown>) => write('warn', message, fields),
  error: (message: string, fields?: Record<string, unknown>) => write('error', message, fields),
};

/** Session ids are capabilities: logs show only a prefix. */
export function redact(id: string): string {
  return id.length > 8 ? `${id.slice(0, 6)}…` : id;
}
