/**
 * @module An idle worker gives back the memory its last busy spell grew. Under load V8 grows the young generation
 * to its maximum and keeps it when the load stops, and V8's own memory reducer gave it back only after some 45 s on
 * Node 20 and 22 and not within minutes on Node 24. So once the worker has seen no new request for `IDLE_MS`, with
 * no WebSocket tunnel open, it runs one full collection of the 'last-resort' flavour (Node 22 and later: V8 shrinks
 * the young generation and releases free pages; Node 20's V8 ignores the flavour, and its full GC shrinks the young
 * generation anyway once the allocation rate has dropped). Measured with scripts/memory-attribution --idle 12
 * --requests 20000, idle worker RSS: Node 20 81 → 68 MiB, Node 22 94 → 76, Node 24 104 → 88. Once per idle spell;
 * a worker that never served a request has grown nothing. The worker runs with --expose-gc for this
 * (master/worker-handle.ts).
 */

/** Quiet this long (no new request) before the collection: a pause of a few ms then can delay nobody's request. */
export const IDLE_MS = 10_000;

export type Collect = () => void;

/** The memory-reducing collection, or null when gc is not exposed (a worker started without --expose-gc). */
export function lastResortGc(gc: unknown = (globalThis as { gc?: unknown }).gc): Collect | null {
  if (typeof gc !== 'function') return null;
  const f = gc as (options: { type: string; flavor: string }) => void;
  return () => f({ type: 'major', flavor: 'last-resort' });
}

export interface Reduced {
  /** RSS before and after, in bytes, and the collection's duration in ms. */
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly ms: number;
}

export class IdleMemory {
  #seen = 0;
  #quietSince = 0;
  /** Collected since the last request (or nothing served yet): nothing to give back. */
  #reduced = true;

  constructor(
    private readonly collect: Collect,
    private readonly idleMs = IDLE_MS,
    private readonly now: () => number = Date.now,
    private readonly rss: () => number = process.memoryUsage.rss,
  ) {}

  /**
   * Called on the worker's stats tick with its request count so far (monotonic) and whether something long-lived
   * is open (a WebSocket tunnel). Returns what a collection gave back when it ran one.
   */
  tick(requests: number, busy: boolean): Reduced | null {
    const now = this.now();
    if (requests !== this.#seen || busy) {
      if (requests !== this.#seen) this.#reduced = false;
      this.#seen = requests;
      this.#quietSince = now;
      return null;
    }
    if (this.#reduced || now - this.#quietSince < this.idleMs) return null;
    this.#reduced = true;
    const rssBefore = this.rss();
    const t = performance.now();
    this.collect();
    return { rssBefore, rssAfter: this.rss(), ms: performance.now() - t };
  }
}
