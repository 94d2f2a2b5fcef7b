/**
 * @module Process warnings (deprecations such as http-proxy's `util._extend` on Node 22+, and any
 * `process.emitWarning`) go to the JSON error log, like every other line, instead of raw to stderr.
 */
import type { Logger } from './logger.js';
import { removeWarningPrinter } from '../util/internals.js';

/** `log` is asked for at each warning: the master's error log may move on reload. */
export function logWarnings(log: () => Logger): void {
  removeWarningPrinter();
  process.on('warning', (w: Error & { code?: string }) => {
    log().warn({ warning: { name: w.name, ...(w.code ? { code: w.code } : {}), message: w.message } }, `process warning: ${w.message}`);
  });
}
