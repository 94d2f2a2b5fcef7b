/**
 * @module A full garbage collection (two at most) when a worker goes quiet, so that an idle worker gives back the
 * young generation its last burst of traffic grew. V8 shrinks the young generation only in a full collection that finds
 * little allocated over the last 5 s, and a proxy's steady load runs only scavenges: without this, a worker idle
 * after a burst kept up to 2 × `--max-semi-space-size` of it (measured in a loop: RSS 79 MiB, and 48 MiB after one
 * `gc()` 5 s into the quiet; a `gc()` 0.5–4 s in shrinks nothing). Node 24's memory reducer does it some seconds
 * after a full collection, but the load that grew the young generation ran none.
 */

/**
 * How long a worker stays quiet before it collects. V8 needs 5 s (it shrinks only while its allocation rate reads
 * low), but a collection shrinks the young generation, which the next burst must grow again: with 6 s, a load
 * that paused for 6 s between bursts (scripts/lib/bench-ab.mjs's alternating rounds) cost 11-13 % more CPU per
 * request on Node 24. Pauses of under half a minute are part of a load; a longer one is idle.
 */
export const QUIET_MS = 30_000;
/**
 * The share of a quiet spell's time the event loop may be busy. A load balancer's health checks (well under 1 ms
 * each) fit, and must not keep the collection off for ever; a long download does not, however few requests
 * finish, and a collection during one would shrink nothing (V8 shrinks only while little is being allocated).
 */
export const QUIET_SHARE = 0.01;
/**
 * Event-loop time worked since the last collection that makes another worth its cost (a few thousand proxied
 * requests): without it a worker under health checks alone would collect after every quiet spell. The cost is a
 * few ms, and a next burst that starts with a small young generation, which scavenges more often until it has
 * grown again (the first second of load after a quiet spell measured 44.7 against 49.6-52.5 ms of worker CPU per
 * 1000 requests without and with the collection: medians of six, in a range of 38-62). Optimized code survives it
 * (checked with %GetOptimizationStatus after seven last-resort collections on Node 20 and 24).
 */
export const WORK_MS = 200;

export class QuietCollector {
  /** Busy time at the start of the current quiet spell, and when it started (-1: no tick yet). */
  #spellBusy = 0;
  #spellStart = -1;
  /** Busy time at the last collection. */
  #collectedBusy = 0;
  /**
   * A second collection is owed one quiet time after the first, if the spell lasts. V8 judges the allocation rate
   * from what was allocated between its last two collections; a young generation of 16 MiB semi-spaces can take
   * that much after the load's last scavenge, so the rate may still read above V8's threshold and the first
   * collection shrinks nothing (seen with a 6 s quiet time in one of two workers at the end of scripts/memory-soak
   * on Node 20: 125 MiB before and after). The second's interval is the quiet spell alone.
   */
  #secondOwed = false;
  readonly #collect: () => void;
  readonly #quietMs: number;

  constructor(collect: () => void, quietMs = QUIET_MS) {
    this.#collect = collect;
    this.#quietMs = quietMs;
  }

  /**
   * Called on a coarse interval with the event loop's busy time so far (ms; ELU's `active`). Collects once a
   * quiet spell (busy at most QUIET_SHARE of it) has lasted the quiet time, if the worker was busy at least WORK_MS
   * since the last collection, and once more if the spell lasts another quiet time; true when it did.
   */
  tick(busyMs: number, now: number): boolean {
    if (this.#spellStart < 0) {
      this.#spellBusy = busyMs;
      this.#spellStart = now;
      return false;
    }
    if (busyMs - this.#spellBusy > this.#quietMs * QUIET_SHARE) {
      this.#spellBusy = busyMs;
      this.#spellStart = now;
      return false;
    }
    if (now - this.#spellStart < this.#quietMs) return false;
    if (busyMs - this.#collectedBusy >= WORK_MS) this.#secondOwed = true;
    else if (this.#secondOwed) this.#secondOwed = false;
    else return false;
    this.#collectedBusy = busyMs;
    this.#spellBusy = busyMs;
    this.#spellStart = now;
    this.#collect();
    return true;
  }
}

/**
 * V8's last-resort collection through the `gc` that `--expose-gc` (in the master's `workerFlags`) puts on the
 * global, or null without the flag. Last-resort, not a plain major collection: it also releases the pages V8 keeps
 * pooled for reuse, which Node 22 and 24 otherwise hold until their memory reducer runs (measured in a loop, 6 s
 * quiet: plain `gc()` RSS 82 -> 82 MiB on Node 22, 83 -> 84 on Node 24; last-resort 82 -> 49 and 84 -> 52, in
 * 11-17 ms).
 */
export function exposedGc(): (() => void) | null {
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return null;
  return () => (gc as (options: object) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
