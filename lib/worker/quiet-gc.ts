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

export class QuietCollector {
  #seen = Number.NaN;
  #changedAt = 0;
  /** Work since the last collection: a worker quiet since then owes none. */
  #owed = false;
  readonly #collect: () => void;
  readonly #quietMs: number;

  constructor(collect: () => void, quietMs = QUIET_MS) {
    this.#collect = collect;
    this.#quietMs = quietMs;
  }

  /**
   * Called on a coarse interval with a count that moves while the worker works (requests and tunnels finished).
   * Collects once when the count has stood still for the quiet time since work; true when it did.
   */
  tick(activity: number, now: number): boolean {
    if (activity !== this.#seen) {
      this.#seen = activity;
      this.#changedAt = now;
      this.#owed = true;
      return false;
    }
    if (!this.#owed || now - this.#changedAt < this.#quietMs) return false;
    this.#owed = false;
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
