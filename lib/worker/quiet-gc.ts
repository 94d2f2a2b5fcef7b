/**
 * @module One full garbage collection when a worker goes quiet, so that an idle worker gives back the young
 * generation its last burst of traffic grew. V8 shrinks the young generation only in a full collection that finds
 * little allocated over the last 5 s, and a proxy's steady load runs only scavenges: without this, a worker idle
 * after a burst kept up to 2 × `--max-semi-space-size` of it (measured in a loop: RSS 79 MiB, and 48 MiB after one
 * `gc()` 5 s into the quiet; a `gc()` 0.5–4 s in shrinks nothing). Node 24's memory reducer does it some seconds
 * after a full collection, but the load that grew the young generation ran none.
 */

/** Quiet long enough that V8's allocation rate (a 5 s window) reads as idle, with a margin. */
export const QUIET_MS = 6000;
/**
 * Requests finished per second that still leave a worker quiet: a load balancer's health checks or a trickle
 * allocate far below the rate under which V8 shrinks (1 MB/s), and must not keep the collection off for ever.
 */
export const QUIET_RATE = 5;
/**
 * Requests and tunnels finished since the last collection that make another worth its cost: without it a worker
 * under health checks alone would collect after every quiet spell, and each last-resort collection also drops
 * compiled code that the next request compiles again.
 */
export const WORK = 1000;

export class QuietCollector {
  /** The count at the start of the current quiet spell, and when it started (-1: no tick yet). */
  #spellCount = 0;
  #spellStart = -1;
  /** The count at the last collection. */
  #collectedCount = 0;
  readonly #collect: () => void;
  readonly #quietMs: number;

  constructor(collect: () => void, quietMs = QUIET_MS) {
    this.#collect = collect;
    this.#quietMs = quietMs;
  }

  /**
   * Called on a coarse interval with a count that moves while the worker works (requests and tunnels finished).
   * Collects once a quiet spell (at most QUIET_RATE per second) has lasted the quiet time, if at least WORK was
   * finished since the last collection; true when it did.
   */
  tick(activity: number, now: number): boolean {
    if (this.#spellStart < 0 || activity < this.#spellCount || activity < this.#collectedCount) {
      // The first tick, or the recorder counting from 0 again.
      this.#spellCount = activity;
      this.#spellStart = now;
      this.#collectedCount = Math.min(this.#collectedCount, activity);
      return false;
    }
    if (activity - this.#spellCount > (QUIET_RATE * this.#quietMs) / 1000) {
      this.#spellCount = activity;
      this.#spellStart = now;
      return false;
    }
    if (now - this.#spellStart < this.#quietMs || activity - this.#collectedCount < WORK) return false;
    this.#collectedCount = activity;
    this.#spellCount = activity;
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
 * 11-17 ms, once per quiet spell).
 */
export function exposedGc(): (() => void) | null {
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return null;
  return () => (gc as (options: object) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
