/**
 * @module The error log and the access log of one process (master or worker), with reopen for USR1.
 * Knows nothing about signals: the master or the worker calls `reopen()`.
 */
import pino from 'pino';
import type { LogConfig, LogDestination } from '../config/types.js';
import { closeSink, flushEvery, openSink, reopenSink, whenWritten, type Sink } from './destination.js';
import { prettify } from './pretty.js';
import { loggerStream, type SinkInternals } from '../util/internals.js';

const ACCESS_FLUSH_MS = 1000;

/**
 * The ISO time of the current millisecond, formatted once per millisecond rather than once per line, and from a
 * prefix formatted once per second: a worker answering fewer requests than a thousand a second (a loaded machine,
 * short connections) otherwise paid a Date and a toISOString for nearly every line.
 */
let lastMs = 0;
let lastTime = '';
let lastSecond = -1;
/** `"time":"YYYY-MM-DDTHH:MM:SS.` of `lastSecond`. */
let secondPrefix = '';
export function accessTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    const second = Math.floor(now / 1000);
    if (second !== lastSecond) {
      lastSecond = second;
      secondPrefix = `"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
    }
    const m = now - second * 1000;
    lastTime = secondPrefix + (m < 10 ? '00' : m < 100 ? '0' : '') + m + 'Z"';
  }
  return lastTime;
}

export type Logger = pino.Logger;

/** Lines of one destination waiting for the end of the event-loop turn. */
interface Batch {
  readonly stream: { write(s: string): void };
  text: string;
  scheduled: boolean;
  /** The sink's own `minLength` (a buffered sink): lines are held here until that many are waiting. */
  readonly hold: number;
}

const batches = new WeakMap<object, Batch>();
const pending = new Set<Batch>();
/** A batch this long is written at once: a turn that answers thousands of requests holds a bounded text. */
const BATCH_MAX = 64 * 1024;

function drain(b: Batch): void {
  b.scheduled = false;
  pending.delete(b);
  const text = b.text;
  if (text === '') return;
  b.text = '';
  try {
    b.stream.write(text);
  } catch {
    /* the sink was closed by a reload (a stale logger): the line is dropped, as pino drops it at level silent */
  }
}

/** Write out every batched line now (before an exit, a flush, a reopen or a close of the sinks). */
export function flushLines(): void {
  for (const b of pending) drain(b);
}

/**
 * Write one pre-serialized JSON line (newline included) to a logger's destination, for the access log's hot
 * path: pino's generic serializer cost about a fifth of a worker's CPU at 20k requests/s. Same sink, same
 * buffering, reopen and failure handling as every other line of that logger.
 * Lines are joined per event-loop turn and handed to the sink once: SonicBoom measures the byte length of its
 * whole pending chunk on every write, which flattens that (up to 16 KiB) string each time, about 3 KB of garbage
 * per line; one write per turn pays that once for all the requests the turn answered.
 */
export function writeLine(log: Logger, line: string): void {
  const stream = loggerStream(log);
  let b = batches.get(stream);
  if (b === undefined) {
    b = { stream, text: '', scheduled: false, hold: (stream as Partial<SinkInternals>).minLength ?? 0 };
    batches.set(stream, b);
  }
  b.text += line;
  if (b.text.length >= BATCH_MAX) drain(b);
  else if (b.hold > 0) {
    // A buffered sink would hold these lines anyway, and it flattens its whole pending text on every write
    // (Buffer.byteLength): handing it one text of minLength spares that per turn (about 1 KB a request).
    // The sink's flush timer (flushEvery) and every flush, reopen and close write what waits here.
    if (b.text.length >= b.hold) drain(b);
    else pending.add(b);
  } else if (!b.scheduled) {
    b.scheduled = true;
    pending.add(b);
    setImmediate(drain, b);
  }
}

export interface Logs {
  /** Error log: pid, role and (in workers) generation on every line. */
  readonly error: Logger;
  /** Access log (workers only), or null when `access: off`. */
  readonly access: Logger | null;
  /** Reopen file destinations (logrotate renamed them). */
  reopen(): void;
  /** Flush buffered lines synchronously (before exit). */
  flush(): void;
}

/** The logs of the process that opened them: it alone may wait for them or close them. */
export interface OwnedLogs extends Logs {
  /** Wait (at most `ms`) for files still being opened, then flush: nothing logged before an exit is lost. */
  settle(ms: number): Promise<void>;
  /** Write what is buffered and close the files (a reload replaced these logs). Standard streams stay open. */
  close(): void;
}

export interface LogBindings {
  readonly role: 'master' | 'worker';
  readonly generation?: number;
}

/** A standard stream on a terminal gets lines for a person (pretty.ts); files and pipes get JSON. */
function forTerminal(dest: LogDestination, sink: Sink): Sink {
  const tty = dest.kind === 'stderr' ? process.stderr.isTTY : dest.kind === 'stdout' ? process.stdout.isTTY : false;
  return tty ? prettify(sink, { colour: !process.env.NO_COLOR }) : sink;
}

export function createLogs(config: LogConfig, bindings: LogBindings): OwnedLogs {
  const sinks: Array<[LogDestination, Sink]> = [];
  const report = (what: string) => ({
    // A failing log destination must not take the process down; say so once on stderr, which always exists.
    onError(err: Error): void {
      process.stderr.write(`baton[${process.pid}]: ${what} log write failed: ${err.message} (retrying; lines beyond 16 MB are dropped meanwhile)\n`);
    },
    onRecover(dropped: number): void {
      process.stderr.write(`baton[${process.pid}]: ${what} log writes work again${dropped > 0 ? `; ${dropped} lines were dropped` : ''}\n`);
    },
  });
  const errorSink = forTerminal(config.error, openSink(config.error, report('error')));
  sinks.push([config.error, errorSink]);
  const errorLog = pino(
    {
      level: config.level,
      base: { pid: process.pid, role: bindings.role, ...(bindings.generation !== undefined ? { generation: bindings.generation } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    errorSink,
  );
  let access: Logger | null = null;
  // The master serves no requests: it never opens the access log.
  if (config.access && bindings.role === 'worker') {
    const sameAsError = config.access.kind === config.error.kind &&
      (config.access.kind !== 'file' || (config.error.kind === 'file' && config.error.path === config.access.path));
    const accessSink = sameAsError ? errorSink : forTerminal(config.access, openSink(config.access, report('access'), { buffered: true }));
    if (!sameAsError) {
      sinks.push([config.access, accessSink]);
      if (config.access.kind === 'file') flushEvery(accessSink, ACCESS_FLUSH_MS, flushLines);
    }
    // No level on access lines. pino writes the timestamp right after the (here empty) level, so it must not
    // start with the comma its stock time functions put first, or the line would open with "{,".
    access = pino({ level: 'info', base: null, timestamp: accessTime, formatters: { level: () => ({}) } }, accessSink);
  }
  const flush = () => {
    flushLines();
    for (const [, sink] of sinks) {
      try { sink.flushSync(); } catch { /* not ready yet or closed: nothing buffered worth a crash */ }
    }
  };
  return {
    error: errorLog,
    access,
    reopen() {
      flushLines();
      for (const [dest, sink] of sinks) reopenSink(dest, sink);
    },
    flush,
    async settle(ms) {
      flushLines();
      await Promise.all(sinks.map(([, sink]) => whenWritten(sink, ms)));
      flush();
    },
    close() {
      // A line logged later through a stale reference must be dropped, not throw "SonicBoom destroyed".
      errorLog.level = 'silent';
      if (access) access.level = 'silent';
      flushLines();
      for (const [, sink] of sinks) closeSink(sink);
    },
  };
}
