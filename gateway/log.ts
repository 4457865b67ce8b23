// Structured logs: one JSON object per line on stderr, `event` first, stable field names
// (`reason` carries the codes of reasons.ts). Quiet in tests unless GATEHOUSE_LOG is set.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const env = process.env.GATEHOUSE_LOG;
  if (env && env in ORDER) return ORDER[env as LogLevel];
  if (env === 'silent' || (!env && process.env.VITEST)) return Infinity;
  return ORDER.info;
}

let minimum = threshold();

/** For tests and the CLI: change the level at run time. */
export function setLogLevel(level: LogLevel | 'silent'): void {
  minimum = level === 'silent' ? Infinity : ORDER[level];
}

export type LogSink = (line: string) => void;
let sink: LogSink = (line) => process.stderr.write(line + '\n');

/** Redirects log lines, e.g. into an array in a test that asserts on what was logged. */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

function write(level: LogLevel, event: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < minimum) return;
  sink(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
}

export const log = {
  /** Whether `level` is written: lets a per-connection caller skip building the fields. */
  enabled: (level: LogLevel): boolean => ORDER[level] >= minimum,
  debug: (event: string, fields?: Record<string, unknown>) => write('debug', event, fields),
  info: (event: string, fields?: Record<string, unknown>) => write('info', event, fields),
  warn: (event: string, fields?: Record<string, unknown>) => write('warn', event, fields),
  error: (event: string, fields?: Record<string, unknown>) => write('error', event, fields),
};
