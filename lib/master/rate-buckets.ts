/**
 * @module The daemon-wide token buckets of `rate_limit` routes. The master keeps them; workers lease tokens in
 * batches over IPC and spend them locally (lib/worker/rate-limit.ts), so a limit holds for the whole daemon
 * whichever worker a client's connections land on. Buckets are named by limiter id (route label + spec) and key,
 * and outlive generations: a reload that keeps a route's limit keeps its buckets (no fresh burst); a new binary
 * starts from the snapshot its old master sends. A full bucket is the same as none and is forgotten.
 */
import type { RateAsk, RateGrant } from '../ipc/messages.js';

/** Keys remembered per limiter; past it the least recently used bucket is dropped (as nginx's zone would). */
const MAX_KEYS = 100_000;
const SWEEP_MS = 10_000;

interface Bucket {
  /** Tokens at `at` (may be negative: spent by workers while the master did not answer). */
  level: number;
  at: number;
}

interface Limiter {
  perMs: number;
  capacity: number;
  readonly keys: Map<string, Bucket>;
}

/** Bucket levels as they travel to a new master: [limiter id, perSecond, capacity, [[key, level]...]]. */
export type BucketSnapshot = readonly (readonly [string, number, number, readonly (readonly [string, number])[]])[];

export class RateBuckets {
  readonly #limiters = new Map<string, Limiter>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly clock: () => number = Date.now) {}

  /** Answer one worker's asks, in order. Malformed asks get nothing (a worker never sends them). */
  lease(asks: readonly RateAsk[]): RateGrant[] {
    const now = this.clock();
    const grants: RateGrant[] = [];
    for (const ask of asks) grants.push(Array.isArray(ask) ? this.#take(ask, now) : [0, 1000]);
    this.#sweepLater();
    return grants;
  }

  #take(ask: RateAsk, now: number): RateGrant {
    const [id, perSecond, capacity, key, want, back] = ask;
    if (typeof id !== 'string' || typeof key !== 'string' || !(perSecond > 0) || !(capacity >= 1) || !(want >= 0)) return [0, 1000];
    const limiter = this.#limiter(id, perSecond, capacity);
    let bucket = limiter.keys.get(key);
    if (bucket === undefined) {
      if (limiter.keys.size >= MAX_KEYS) limiter.keys.delete(limiter.keys.keys().next().value as string);
      bucket = { level: capacity, at: now };
    } else {
      // Least recently used first: re-inserting moves the key to the end of the map's order.
      limiter.keys.delete(key);
      this.#refill(limiter, bucket, now);
    }
    limiter.keys.set(key, bucket);
    if (Number.isFinite(back) && back !== 0) bucket.level = Math.max(-capacity, Math.min(capacity, bucket.level + back));
    const granted = Math.max(0, Math.min(Math.floor(want), Math.floor(bucket.level)));
    bucket.level -= granted;
    if (granted >= want) return [granted, 0];
    // When the next token will be there: what Retry-After says.
    return [granted, Math.max(1, Math.ceil((1 - bucket.level) / limiter.perMs))];
  }

  #limiter(id: string, perSecond: number, capacity: number): Limiter {
    let limiter = this.#limiters.get(id);
    if (limiter === undefined) {
      limiter = { perMs: perSecond / 1000, capacity, keys: new Map() };
      this.#limiters.set(id, limiter);
    }
    return limiter;
  }

  #refill(limiter: Limiter, bucket: Bucket, now: number): void {
    if (now > bucket.at) bucket.level = Math.min(limiter.capacity, bucket.level + (now - bucket.at) * limiter.perMs);
    bucket.at = now;
  }

  /** Forget full buckets (and limiters left without any), so that memory follows the clients that are limited. */
  sweep(): void {
    const now = this.clock();
    for (const [id, limiter] of this.#limiters) {
      for (const [key, bucket] of limiter.keys) {
        this.#refill(limiter, bucket, now);
        if (bucket.level >= limiter.capacity) limiter.keys.delete(key);
      }
      if (limiter.keys.size === 0) this.#limiters.delete(id);
    }
  }

  #sweepLater(): void {
    if (this.#sweeper !== null) return;
    this.#sweeper = setTimeout(() => {
      this.#sweeper = null;
      this.sweep();
      if (this.#limiters.size > 0) this.#sweepLater();
    }, SWEEP_MS);
    this.#sweeper.unref();
  }

  /** Buckets still below capacity (a count for tests and /status). */
  get size(): number {
    let n = 0;
    for (const l of this.#limiters.values()) n += l.keys.size;
    return n;
  }

  /** What a new master needs to go on where this one is (levels as of now). */
  snapshot(): BucketSnapshot {
    this.sweep();
    const out: [string, number, number, [string, number][]][] = [];
    for (const [id, l] of this.#limiters) out.push([id, l.perMs * 1000, l.capacity, [...l.keys].map(([k, b]) => [k, b.level])]);
    return out;
  }

  /** Take an old master's levels (a bucket this master has used already keeps its own). */
  restore(snapshot: unknown): void {
    if (!Array.isArray(snapshot)) return;
    const now = this.clock();
    for (const entry of snapshot) {
      if (!Array.isArray(entry) || entry.length !== 4 || typeof entry[0] !== 'string' || !(entry[1] > 0) || !(entry[2] >= 1) || !Array.isArray(entry[3])) continue;
      const limiter = this.#limiter(entry[0], entry[1] as number, entry[2] as number);
      for (const kv of entry[3] as unknown[]) {
        if (!Array.isArray(kv) || typeof kv[0] !== 'string' || typeof kv[1] !== 'number' || limiter.keys.has(kv[0])) continue;
        if (limiter.keys.size >= MAX_KEYS) break;
        limiter.keys.set(kv[0], { level: Math.max(-limiter.capacity, Math.min(limiter.capacity, kv[1])), at: now });
      }
    }
    this.#sweepLater();
  }
}
