/**
 * @module Load a config file: source → section readers (validate + normalize in one walk over the YAML nodes)
 * → deep-frozen Config. The one loader behind start, `-t` and reload; it never throws for a bad file.
 */
import { sortConfigErrors } from './errors.js';
import { deepFreeze } from './freeze.js';
import { Reader } from './reader.js';
import { readConfig } from './sections/root.js';
import { readSource } from './source.js';
import type { LoadResult } from './types.js';

export function loadConfig(file: string): LoadResult {
  const source = readSource(file);
  if (!source.ok) return { ok: false, errors: sortConfigErrors(source.errors) };
  const reader = new Reader(source.source);
  const config = readConfig(reader);
  if (config === undefined || reader.errors.length > 0) return { ok: false, errors: sortConfigErrors(reader.errors) };
  return { ok: true, config: deepFreeze(config) };
}
