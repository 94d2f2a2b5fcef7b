/**
 * @module The waiting room of one upstream (`upstreams.NAME.queue`, nginx's `queue`, HAProxy's `timeout queue`):
 * requests that found every live target at its `max_connections` wait here, first come first served, at most
 * `size` of them and each at most `timeout`; then 503. A slot freed on any target of the upstream wakes the
 * head of the queue, which picks a target again.
 */
import type { QueueConfig } from '../../config/types.js';

export interface Waiter {
  /** A slot may be free: take it and return true, or return false to keep waiting. */
  proceed(now: number): boolean;
  /** Waited `timeout` in vain: answer 503. */
  expired(waitedMs: number): void;
}

interface Entry {
  readonly waiter: Waiter;
  readonly since: number;
  timer: NodeJS.Timeout | null;
}

export class WaitQueue {
  readonly #conf: QueueConfig;
  readonly #entries: Entry[] = [];
  readonly #byWaiter = new Map<Waiter, Entry>();
  /** Called with the new depth after every change (the /metrics gauge). */
  readonly #onDepth: (delta: number) => void;

  constructor(conf: QueueConfig, onDepth: (delta: number) => void = () => {}) {
    this.#conf = conf;
    this.#onDepth = onDepth;
  }

  get depth(): number {
    return this.#entries.length;
  }

  get timeout(): number {
    return this.#conf.timeout;
  }

  /** Queue `w`; false when the queue is full (answer 503 at once). */
  add(w: Waiter): boolean {
    if (this.#entries.length >= this.#conf.size) return false;
    const entry: Entry = { waiter: w, since: performance.now(), timer: null };
    entry.timer = setTimeout(() => {
      entry.timer = null;
      if (this.#drop(entry)) w.expired(performance.now() - entry.since);
    }, this.#conf.timeout);
    this.#entries.push(entry);
    this.#byWaiter.set(w, entry);
    this.#onDepth(1);
    return true;
  }

  /** `w` leaves without a slot (its client went away). Returns how long it waited, or -1 if it was not queued. */
  remove(w: Waiter): number {
    const entry = this.#byWaiter.get(w);
    if (entry === undefined || !this.#drop(entry)) return -1;
    return performance.now() - entry.since;
  }

  /** How long `w` has waited so far (ms), or -1. */
  waited(w: Waiter): number {
    const entry = this.#byWaiter.get(w);
    return entry === undefined ? -1 : performance.now() - entry.since;
  }

  /** Slots were freed: let waiters in from the head until one finds none. */
  wake(now: number): void {
    while (this.#entries.length > 0) {
      const entry = this.#entries[0]!;
      // The waiter stays listed while it decides, so that waited() still answers.
      if (!entry.waiter.proceed(now)) return;
      this.#drop(entry);
    }
  }

  #drop(entry: Entry): boolean {
    const i = this.#entries.indexOf(entry);
    if (i === -1) return false;
    this.#entries.splice(i, 1);
    this.#byWaiter.delete(entry.waiter);
    if (entry.timer !== null) clearTimeout(entry.timer);
    this.#onDepth(-1);
    return true;
  }

  /** Forget every waiter (the handler closes). */
  clear(): void {
    for (const e of this.#entries) if (e.timer !== null) clearTimeout(e.timer);
    if (this.#entries.length > 0) this.#onDepth(-this.#entries.length);
    this.#entries.length = 0;
    this.#byWaiter.clear();
  }
}
