/**
 * @module Log sinks: a file that can be reopened (for logrotate's rename + USR1), or a standard stream.
 */
import pino from 'pino';
import type { LogDestination } from '../config/types.js';

export type Sink = ReturnType<typeof pino.destination>;

/**
 * Open a sink. Files are opened in append mode with `mkdir` so a fresh log directory works; writes are
 * asynchronous (SonicBoom) so a slow disk does not stall requests. A write error is reported once through
 * `onError` and the sink keeps trying: a full disk must not stop the proxy.
 */
export function openSink(dest: LogDestination, onError: (err: Error) => void, opts: { buffered?: boolean } = {}): Sink {
  let sink: Sink;
  // A buffered sink (the access log) writes in 4 KiB batches instead of one write per line: that write was a
  // measurable share of the per-request cost. flushEvery() bounds how long a quiet server holds lines back.
  if (dest.kind === 'file') sink = pino.destination({ dest: dest.path, sync: false, mkdir: true, append: true, minLength: opts.buffered ? 4096 : 0 });
  else sink = pino.destination({ fd: dest.kind === 'stderr' ? 2 : 1, sync: dest.kind === 'stderr' });
  let reported = false;
  sink.on('error', (err: Error) => {
    if (!reported) onError(err);
    reported = true;
  });
  sink.on('ready', () => { reported = false; });
  return sink;
}

/** Reopen a file sink (no-op for standard streams). */
export function reopenSink(dest: LogDestination, sink: Sink): void {
  if (dest.kind === 'file') sink.reopen();
}

/** Flush a buffered sink at least this often, so lines of a quiet server still reach the file. */
export function flushEvery(sink: Sink, ms: number): void {
  setInterval(() => {
    try {
      sink.flush();
    } catch {
      /* not open yet, or being reopened: the next tick retries */
    }
  }, ms).unref();
}
