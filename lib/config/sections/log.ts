/** @module The `log` section: level, error log and access log destinations. */
import type { LogConfig, LogDestination, LogLevel } from '../types.js';
import { optional, type Cursor, type Reader } from '../reader.js';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

export function readLog(r: Reader, cur: Cursor | undefined): LogConfig {
  const f = optional(cur, (c) => r.fields(c, ['level', 'error', 'access', 'query_strings']));
  const access = f?.get('access');
  return {
    level: optional(f?.get('level'), (c) => r.oneOf(c, LEVELS)) ?? 'info',
    error: optional(f?.get('error'), (c) => readDestination(r, c, false)) ?? { kind: 'stderr' },
    access: access === undefined ? { kind: 'stdout' } : (readDestination(r, access, true) ?? null),
    // Query strings often carry tokens; `false` keeps them out of both logs.
    queryStrings: optional(f?.get('query_strings'), (c) => r.bool(c)) ?? true,
  };
}

/** A file path, or a stream name. `off` (access log only) is null; undefined means an error was recorded. */
function readDestination(r: Reader, cur: Cursor, canBeOff: boolean): LogDestination | null | undefined {
  const text = r.string(cur);
  if (text === undefined) return undefined;
  if (text === 'stderr' || text === 'stdout') return { kind: text };
  if (text === 'off') return canBeOff ? null : r.fail(cur.node, cur.path, 'the error log cannot be off');
  return { kind: 'file', path: r.resolve(text) };
}
