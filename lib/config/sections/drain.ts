/**
 * @module The `drain` section: how a leaving generation treats the connections it still has. `handoff` (on by
 * default) passes idle cleartext HTTP/1.1 keep-alive connections and cleartext WebSocket tunnels to the new
 * generation instead of closing them (README, "Draining"); `off` keeps nginx's way, for comparison.
 */
import { isScalar } from 'yaml';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { DrainConfig } from '../types.js';

const KEYS = ['handoff'];

export const DEFAULT_DRAIN: DrainConfig = Object.freeze({ handoff: true });

export function readDrain(r: Reader, cur: Cursor | undefined): DrainConfig {
  const f = optional(cur, (c) => r.fields(c, KEYS));
  if (f === undefined) return DEFAULT_DRAIN;
  return { handoff: optional(f.get('handoff'), (c) => readSwitch(r, c)) ?? DEFAULT_DRAIN.handoff };
}

/** `on` or `off` (YAML 1.2 reads them as strings); `true` and `false` mean the same. */
function readSwitch(r: Reader, cur: Cursor): boolean | undefined {
  const v = isScalar(cur.node) ? cur.node.value : undefined;
  if (v === 'on' || v === true) return true;
  if (v === 'off' || v === false) return false;
  return r.mismatch(cur, 'on or off');
}
