/**
 * @module Log sinks: a file that can be reopened (for logrotate's rename + USR1), or a standard stream.
 *
 * A log destination that fails (full disk, a directory that cannot be created, a file that cannot be opened)
 * must not stop the proxy or grow its memory. SonicBoom, left alone, keeps every line that it could not write
 * (unbounded), retries only when the next line arrives, cannot reopen a file it never managed to open, and its
 * `flushSync()` loops forever on ENOSPC, which pino calls from the process 'exit' handler: a worker with a
 * full log disk could never exit. So: lines are buffered up to `MAX_BUFFERED` and dropped (counted) past it;
 * the failure is reported once, and the recovery once with the number of lines lost; a timer retries
 * (reopening the file if it was never opened); and `flushSync` is skipped while the sink is failing.
 */
import pino from 'pino';
import type { LogDestination } from '../config/types.js';
import { sinkInternals } from '../util/internals.js';

export type Sink = ReturnType<typeof pino.destination>;

/** What must stop when a sink is closed (its retry and flush timers). */
const cleanups = new WeakMap<Sink, Array<() => void>>();

function onClose(sink: Sink, fn: () => void): void {
  const list = cleanups.get(sink);
  if (list) list.push(fn);
  else cleanups.set(sink, [fn]);
}

/** Bytes of log lines kept while the destination fails; later lines are dropped. */
export const MAX_BUFFERED = 16 * 1024 * 1024;
/** A buffered sink writes once this much waits (or its flush timer fires); SonicBoom wants it under maxWrite. */
const BUFFERED_MIN = 32 * 1024;
const BUFFERED_MAX_WRITE = 64 * 1024;
const RETRY_MS = 5000;


export interface SinkEvents {
  /** The first failure of a run of failures. */
  onError(err: Error): void;
  /** Writes work again; `dropped` lines were lost meanwhile. */
  onRecover?(dropped: number): void;
}

/**
 * Open a sink. Files are opened in append mode with `mkdir` so a fresh log directory works; writes are
 * asynchronous (SonicBoom) so a slow disk does not stall requests.
 */
export function openSink(dest: LogDestination, events: SinkEvents | ((err: Error) => void), opts: { buffered?: boolean } = {}): Sink {
  const ev: SinkEvents = typeof events === 'function' ? { onError: events } : events;
  let sink: Sink;
  // A buffered sink (the access log) writes in 32 KiB batches instead of one write per line: each write is a hop
  // to libuv's thread pool (a thread woken, a futex), a measurable share of the per-request cost. nginx's
  // `access_log ... buffer=64k` is the same trade. flushEvery() bounds how long a quiet server holds lines back.
  if (dest.kind === 'file') sink = pino.destination({ dest: dest.path, sync: false, mkdir: true, append: true, minLength: opts.buffered ? BUFFERED_MIN : 0, maxWrite: opts.buffered ? BUFFERED_MAX_WRITE : undefined, maxLength: MAX_BUFFERED });
  else sink = pino.destination({ fd: dest.kind === 'stderr' ? 2 : 1, sync: dest.kind === 'stderr', maxLength: MAX_BUFFERED });
  const internals = sinkInternals(sink);
  let failing = false;
  let dropped = 0;
  let retry: NodeJS.Timeout | null = null;

  const recover = () => {
    if (!failing) return;
    failing = false;
    if (retry !== null) clearInterval(retry);
    retry = null;
    const lost = dropped;
    dropped = 0;
    ev.onRecover?.(lost);
  };
  const tryAgain = () => {
    try {
      if (dest.kind === 'file' && internals.fd < 0) openNow(sink, dest.path);
      else if (internals._len > 0 && !internals._writing) {
        if (internals.minLength > 0) sink.flush();
        else sink.write(''); // with minLength 0, flush() does nothing; a write makes SonicBoom write its buffer
      }
    } catch {
      /* still failing: the next round tries again */
    }
  };
  sink.on('error', (err: Error) => {
    // Never opened: SonicBoom would pass fd -1 to fs.write, which throws synchronously into the logging call.
    // Marked as writing, it only buffers (up to maxLength) until openNow() succeeds.
    if (internals.fd < 0) internals._writing = true;
    if (failing) return;
    failing = true;
    ev.onError(err);
    retry = setInterval(tryAgain, RETRY_MS);
    retry.unref();
  });
  onClose(sink, () => {
    if (retry !== null) clearInterval(retry);
    retry = null;
  });
  sink.on('drop', () => { dropped++; });
  sink.on('write', (n: number) => { if (failing && n > 0) recover(); });
  sink.on('ready', recover);

  const flushSync = sink.flushSync.bind(sink);
  sink.flushSync = () => {
    if (failing || internals.fd < 0) return; // SonicBoom would retry a failing write forever
    flushSync();
  };
  return sink;
}

/**
 * Open a file sink that never managed to open: `reopen()` would, after success, fs.close() the old fd (-1),
 * which throws from inside its 'ready' listener. That one listener is removed again.
 */
function openNow(sink: Sink, path: string): void {
  const internals = sinkInternals(sink);
  const before = new Set(sink.listeners('ready'));
  internals.file = path; // reopen() refuses a sink whose first open failed (file still null)
  internals._writing = false;
  try {
    sink.reopen(path);
  } catch (err) {
    internals._writing = true;
    throw err;
  }
  for (const l of sink.listeners('ready')) if (!before.has(l)) sink.removeListener('ready', l as () => void);
}

/** Reopen a file sink (no-op for standard streams); also opens a file that could not be opened so far. */
export function reopenSink(dest: LogDestination, sink: Sink): void {
  if (dest.kind !== 'file') return;
  if (sinkInternals(sink).fd < 0) openNow(sink, dest.path);
  else sink.reopen(dest.path);
}

/** Flush a buffered sink at least this often, so lines of a quiet server still reach the file; `before` first hands
 * it the lines still batched for it (logger.ts). */
export function flushEvery(sink: Sink, ms: number, before?: () => void): void {
  const timer = setInterval(() => {
    try {
      before?.();
      sink.flush();
    } catch {
      /* not open yet, or being reopened: the next tick retries */
    }
  }, ms);
  timer.unref();
  onClose(sink, () => clearInterval(timer));
}

/**
 * Wait (at most `ms`) until a sink has opened its file and has no write in flight, so that lines logged just
 * before an exit are not lost: SonicBoom opens and writes asynchronously, and its flushSync() neither writes to a
 * file it has not opened yet nor waits for a write already handed to the thread pool.
 */
export function whenWritten(sink: Sink, ms: number): Promise<void> {
  const i = sinkInternals(sink);
  const settled = () => i.destroyed || (i.fd >= 0 && !i._writing);
  if (settled()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      sink.off('ready', later).off('drain', later).off('write', later).off('error', done);
      resolve();
    };
    // 'write' fires before SonicBoom clears its writing flag: look again on the next turn.
    const later = () => setImmediate(() => { if (settled()) done(); });
    const timer = setTimeout(done, ms);
    // A failing destination will not get better before the exit: stop waiting.
    sink.on('ready', later).on('drain', later).on('write', later).once('error', done);
  });
}

/**
 * Close a sink that is replaced (a reload moved the log): what it holds is written, its descriptor closed (never
 * fd 1 or 2), its timers stopped.
 */
export function closeSink(sink: Sink): void {
  for (const fn of cleanups.get(sink) ?? []) fn();
  cleanups.delete(sink);
  if (sinkInternals(sink).destroyed) return;
  if (sinkInternals(sink).fd < 0) sink.destroy();
  else sink.end();
}
