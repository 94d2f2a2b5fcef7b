/** @module The one config loader behind start, `-t` and reload: source → section readers → deep-frozen Config. */
import { sortConfigErrors } from './errors.js';
import { deepFreeze } from './freeze.js';
import { preflight, type PreflightOptions } from './preflight.js';
import { Reader } from './reader.js';
import { readConfig } from './sections/root.js';
import { readSource } from './source.js';
import type { LoadResult } from './types.js';

export interface LoadOptions {
  /** Also check the config against this machine (`-t`: user, pid file and log paths) or for `--daemon` (no log on a terminal). */
  readonly preflight?: PreflightOptions;
}

/** Never throws for a bad file: every problem comes back in `errors`, positioned, in file order. */
export function loadConfig(file: string, opts: LoadOptions = {}): LoadResult {
  const source = readSource(file);
  if (!source.ok) return { ok: false, errors: sortConfigErrors(source.errors) };
  const reader = new Reader(source.source);
  const config = readConfig(reader);
  if (config === undefined || reader.errors.length > 0) return { ok: false, errors: sortConfigErrors(reader.errors) };
  if (opts.preflight) preflight(reader, config, opts.preflight);
  if (reader.errors.length > 0) return { ok: false, errors: sortConfigErrors(reader.errors) };
  return { ok: true, config: deepFreeze(config) };
}
