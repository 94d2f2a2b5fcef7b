/**
 * @module The error log and the access log of one process (master or worker), with reopen for USR1.
 * Knows nothing about signals: the master or the worker calls `reopen()`.
 */
import pino from 'pino';
import type { LogConfig } from '../config/types.js';
import { flushEvery, openSink, reopenSink, type Sink } from './destination.js';
import { loggerStream } from '../util/internals.js';

const ACCESS_FLUSH_MS = 1000;

/** The ISO time of the current millisecond, formatted once per millisecond rather than once per line. */
let lastMs = 0;
let lastTime = '';
export function accessTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export type Logger = pino.Logger;

/**
 * Write one pre-serialized JSON line (newline included) to a logger's destination, for the access log's hot
 * path: pino's generic serializer cost about a fifth of a worker's CPU at 20k requests/s. Same sink, same
 * buffering, reopen and failure handling as every other line of that logger.
 */
export function writeLine(log: Logger, line: string): void {
  loggerStream(log).write(line);
}

export interface Logs {
  /** Error log: pid, role and (in workers) generation on every line. */
  readonly error: Logger;
  /** Access log, or null when `access: off`. */
  readonly access: Logger | null;
  /** Reopen file destinations (logrotate renamed them). */
  reopen(): void;
  /** Flush buffered lines synchronously (before exit). */
  flush(): void;
}

export interface LogBindings {
  readonly role: 'master' | 'worker';
  readonly generation?: number;
}

export function createLogs(config: LogConfig, bindings: LogBindings): Logs {
  const sinks: Array<[LogConfig['error'], Sink]> = [];
  let errorLog: Logger | undefined;
  const report = (what: string) => ({
    // A failing log destination must not take the process down; say so once on stderr, which always exists.
    onError(err: Error): void {
      process.stderr.write(`baton[${process.pid}]: ${what} log write failed: ${err.message} (retrying; lines beyond 16 MB are dropped meanwhile)\n`);
    },
    onRecover(dropped: number): void {
      process.stderr.write(`baton[${process.pid}]: ${what} log writes work again${dropped > 0 ? `; ${dropped} lines were dropped` : ''}\n`);
    },
  });
  const errorSink = openSink(config.error, report('error'));
  sinks.push([config.error, errorSink]);
  errorLog = pino(
    {
      level: config.level,
      base: { pid: process.pid, role: bindings.role, ...(bindings.generation !== undefined ? { generation: bindings.generation } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    errorSink,
  );
  let access: Logger | null = null;
  if (config.access) {
    const sameAsError = config.access.kind === config.error.kind &&
      (config.access.kind !== 'file' || (config.error.kind === 'file' && config.error.path === config.access.path));
    const accessSink = sameAsError ? errorSink : openSink(config.access, report('access'), { buffered: true });
    if (!sameAsError) {
      sinks.push([config.access, accessSink]);
      if (config.access.kind === 'file') flushEvery(accessSink, ACCESS_FLUSH_MS);
    }
    // No level on access lines. pino writes the timestamp right after the (here empty) level, so it must not
    // start with the comma its stock time functions put first, or the line would open with "{,".
    access = pino({ level: 'info', base: null, timestamp: accessTime, formatters: { level: () => ({}) } }, accessSink);
  }
  return {
    error: errorLog,
    access,
    reopen() {
      for (const [dest, sink] of sinks) reopenSink(dest, sink);
    },
    flush() {
      for (const [, sink] of sinks) {
        try { sink.flushSync(); } catch { /* not ready yet or closed: nothing buffered worth a crash */ }
      }
    },
  };
}
