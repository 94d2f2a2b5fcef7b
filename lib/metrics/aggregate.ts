/**
 * @module The master's sum over worker processes, live and gone. Workers push snapshots of cumulative counters
 * (see snapshot.ts); the aggregator keeps the last snapshot of each live worker and, when a worker exits,
 * folds that last snapshot into a running "retired" total. So counters never go backwards when a worker is
 * replaced or a generation leaves.
 *
 * What can be lost: a worker killed with SIGKILL (or crashing) cannot send a final snapshot, so whatever it
 * counted since its last push (up to one push interval, about a second) is lost. Workers that leave normally
 * (drain, TERM) push a final snapshot just before exiting.
 */
import { EMPTY_SNAPSHOT, isSnapshot, Totals, type MetricsSnapshot } from './snapshot.js';

/** How many exited workers are remembered to absorb a snapshot that arrives after their exit was seen. */
const REMEMBER_GONE = 64;

/**
 * `K` identifies one worker process: its pid, or better the master's handle object for it (an exited pid may
 * be reused by the OS for a later worker; a handle never is).
 */
export class Aggregator<K> {
  readonly #live = new Map<K, MetricsSnapshot>();
  /** Exited workers: the snapshot already folded into `#retired`. */
  readonly #gone = new Map<K, MetricsSnapshot>();
  readonly #retired = new Totals();

  /** A snapshot pushed by worker `key` (anything that is not a snapshot is ignored). */
  update(key: K, snapshot: unknown): void {
    if (!isSnapshot(snapshot)) return;
    const folded = this.#gone.get(key);
    if (folded !== undefined) {
      // The exit was seen first (IPC and the exit status travel separately): add only what is new.
      this.#retired.add(snapshot, 1).add(folded, -1);
      this.#gone.set(key, snapshot);
      return;
    }
    this.#live.set(key, snapshot);
  }

  /** Worker `key` exited: its last snapshot joins the retired total; its gauges stop counting. */
  exit(key: K): void {
    if (this.#gone.has(key)) return;
    const last = this.#live.get(key) ?? EMPTY_SNAPSHOT;
    this.#live.delete(key);
    this.#retired.add(last);
    this.#gone.set(key, last);
    if (this.#gone.size > REMEMBER_GONE) this.#gone.delete(this.#gone.keys().next().value as K);
  }

  get live(): number {
    return this.#live.size;
  }

  /** Retired + every live worker's last snapshot; gauges from the live workers only. */
  totals(): Totals {
    const t = new Totals().addTotals(this.#retired);
    for (const s of this.#live.values()) t.add(s, 1, true);
    return t;
  }
}
