/**
 * @module Client-side inactivity (`idle_timeout`) without a timer per request. The pools bound the upstream side
 * (headers and body timeouts) but not a client that stops sending its request body (the pool keeps waiting while
 * it is writing) nor one that stops reading the response (the pool's body timer sleeps while we hold it
 * paused). Only uploads and responses in one of those two states are in the watch set (request-body.ts, relay.ts);
 * one coarse interval sweeps it.
 */

export interface IdleWatched {
  /** `Date.now()` of the last progress; the owner refreshes it. */
  idleSince: number;
  /** Allowed inactivity in ms. */
  readonly idleLimit: number;
  /** Called once, after it left the set, when it stayed idle past its limit. */
  onIdle(now: number): void;
}

export class IdleSweeper {
  readonly #watched = new Set<IdleWatched>();
  readonly #period: number;
  #timer: NodeJS.Timeout | null = null;

  /** `period` bounds the lateness of a timeout; a quarter of the shortest idle timeout is plenty. */
  constructor(period: number) {
    this.#period = Math.max(10, Math.min(1000, Math.floor(period)));
  }

  get size(): number {
    return this.#watched.size;
  }

  watch(x: IdleWatched, now: number): void {
    x.idleSince = now;
    this.#watched.add(x);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(Date.now()), this.#period);
      this.#timer.unref(); // never what keeps a worker alive
    }
  }

  unwatch(x: IdleWatched): void {
    this.#watched.delete(x);
  }

  sweep(now: number): void {
    for (const x of this.#watched) {
      if (now - x.idleSince < x.idleLimit) continue;
      this.#watched.delete(x);
      try {
        x.onIdle(now);
      } catch {
        // onIdle only aborts one request; a bug there must not stop the sweep for the others.
      }
    }
    if (this.#watched.size === 0) this.close();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
