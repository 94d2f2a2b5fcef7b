/**
 * @module Daemon-wide rate limits, the worker's side. The master keeps each route's token buckets (one per key:
 * the client address, or a header's value); a worker leases tokens in small batches and spends them locally, so
 * the common request costs a map lookup and a decrement, and only a key's first request, or one whose lease ran
 * out, waits for the master (one IPC round trip; asks of one event-loop turn travel together). A bucket the master
 * says is empty is remembered until it refills, so a flood is refused locally. If the master does not answer
 * within 250 ms (busy, or gone: rate-lease.ts), the worker decides alone from a bucket of its share of the limit
 * (rate and burst divided by the number of workers) and owes the tokens it spent, paid back on its next ask.
 */
import type http from 'node:http';
import type { RateLimitConfig, RouteConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { recorder, routeLabel } from '../metrics/recorder.js';
import { leases, type LeaseClient, type LeaseHolder } from './rate-lease.js';

export { LeaseClient, leases } from './rate-lease.js';

/** What a rate limit needs of a request (an Exchange). */
export interface Limited {
  readonly client: string;
  readonly req: http.IncomingMessage;
  readonly routeIndex: number;
  /** Go on with the request. */
  proceed(): void;
  /** Answer 429 with this Retry-After (seconds). */
  limited(retryAfter: number): void;
  clientLeft(): boolean;
}

/** A key unused this long gives its leased tokens back and is forgotten. */
const IDLE_MS = 2000;
const SWEEP_MS = 1000;
const MAX_KEYS = 100_000;
/** Requests of one key waiting for the master at once; more are refused (the bucket cannot be that deep anyway). */
const MAX_WAITING = 10_000;
/**
 * A batch is what the rate gives in this long: bigger batches, fewer asks, more tokens idle in one worker. Also the
 * shortest time a worker refuses a key locally once the master said its bucket is empty.
 */
const BATCH_MS = 50;
const MAX_KEY_LENGTH = 128;

export interface KeyState {
  /** Leased tokens not spent yet. */
  tokens: number;
  /** The master said the bucket is empty: refuse locally until then. */
  deniedUntil: number;
  waiting: Limited[] | null;
  asking: boolean;
  usedAt: number;
  /** Tokens to give back (negative: owed, spent while the master did not answer). */
  back: number;
  /** This worker's share of the bucket, used only while the master does not answer. */
  alone: { level: number; at: number } | null;
}

/** One route's limit in this worker. */
export class RateLimiter implements LeaseHolder<KeyState> {
  readonly id: string;
  readonly perSecond: number;
  readonly capacity: number;
  readonly #header: string | null;
  readonly #batch: number;
  readonly #share: number;
  readonly #keys = new Map<string, KeyState>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(label: string, conf: RateLimitConfig, workers: number, private readonly client: LeaseClient = leases) {
    this.id = `${label} ${conf.spec}`;
    this.perSecond = conf.perSecond;
    this.capacity = conf.burst + 1;
    this.#header = conf.key.startsWith('header:') ? conf.key.slice('header:'.length) : null;
    this.#batch = Math.max(1, Math.min(Math.ceil((conf.perSecond * BATCH_MS) / 1000), Math.floor(this.capacity / (2 * Math.max(1, workers)))));
    this.#share = 1 / Math.max(1, workers);
  }

  /** The request goes on (`proceed`) or gets 429 (`limited`), now or once the master has answered. */
  admit(r: Limited): void {
    const key = this.#keyOf(r);
    // Like nginx: a request without the key's header is not limited.
    if (key === null) return r.proceed();
    const now = Date.now();
    const st = this.#state(key, now);
    st.usedAt = now;
    if (st.tokens >= 1) {
      st.tokens--;
      if (st.tokens < this.#batch && !st.asking && now >= st.deniedUntil) this.#ask(st, key, this.#batch);
      return r.proceed();
    }
    if (now < st.deniedUntil) return this.#refuse(r, st.deniedUntil - now);
    if (this.client.down) {
      // The master did not answer the last time: decide alone at once, and keep asking so as to see it return.
      this.#alone(st, r, now);
      if (!st.asking) this.#ask(st, key, this.#batch);
      return;
    }
    const waiting = (st.waiting ??= []);
    if (waiting.length >= MAX_WAITING) return this.#refuse(r, 1000);
    waiting.push(r);
    if (!st.asking) this.#ask(st, key, waiting.length + this.#batch);
  }

  #keyOf(r: Limited): string | null {
    if (this.#header === null) return r.client;
    const v = r.req.headers[this.#header];
    if (v === undefined || v === '') return null;
    const key = typeof v === 'string' ? v : v.join(', ');
    // A client chooses this value: long ones are hashed, so that 100000 keys stay small in the master.
    return key.length <= MAX_KEY_LENGTH ? key : process.getBuiltinModule('node:crypto').createHash('sha256').update(key).digest('base64');
  }

  #state(key: string, now: number): KeyState {
    let st = this.#keys.get(key);
    if (st === undefined) {
      if (this.#keys.size >= MAX_KEYS) this.sweep(now, true);
      st = { tokens: 0, deniedUntil: 0, waiting: null, asking: false, usedAt: now, back: 0, alone: null };
      this.#keys.set(key, st);
      this.#sweepLater();
    }
    return st;
  }

  #ask(st: KeyState, key: string, want: number): void {
    st.asking = true;
    const back = st.back;
    st.back = 0;
    this.client.ask({ limiter: this, key, state: st, want, back });
  }

  #refuse(r: Limited, waitMs: number): void {
    recorder.rateLimited(r.routeIndex);
    r.limited(Math.max(1, Math.ceil(waitMs / 1000)));
  }

  /** The master's answer to an ask for `key`. */
  granted(st: KeyState, key: string, want: number, granted: number, waitMs: number, late: boolean): void {
    st.tokens += granted;
    if (late) return; // its requests were decided already (alone)
    st.asking = false;
    const now = Date.now();
    // Not before a batch could have refilled: a flood of one key costs the master an ask per BATCH_MS at most.
    st.deniedUntil = granted < want ? now + Math.max(waitMs, BATCH_MS) : 0;
    const waiting = st.waiting;
    st.waiting = null;
    if (waiting === null) return;
    let i = 0;
    for (; i < waiting.length; i++) {
      const r = waiting[i]!;
      if (r.clientLeft()) continue;
      if (st.tokens < 1) break;
      st.tokens--;
      r.proceed();
    }
    if (i === waiting.length) return;
    // More came than were asked for while the master answered: ask again for them, unless the bucket is empty.
    if (now >= st.deniedUntil) {
      st.waiting = waiting.slice(i);
      this.#ask(st, key, st.waiting.length + this.#batch);
      return;
    }
    for (; i < waiting.length; i++) if (!waiting[i]!.clientLeft()) this.#refuse(waiting[i]!, st.deniedUntil - now);
  }

  /** The master did not answer: decide the waiting requests from this worker's share, and owe what they spend. */
  alone(st: KeyState, now: number): void {
    st.asking = false;
    const waiting = st.waiting;
    st.waiting = null;
    if (waiting === null) return;
    for (const r of waiting) if (!r.clientLeft()) this.#alone(st, r, now);
  }

  #alone(st: KeyState, r: Limited, now: number): void {
    const capacity = Math.max(1, this.capacity * this.#share);
    const perMs = (this.perSecond * this.#share) / 1000;
    const b = (st.alone ??= { level: capacity, at: now });
    b.level = Math.min(capacity, b.level + (now - b.at) * perMs);
    b.at = now;
    if (b.level < 1) return this.#refuse(r, (1 - b.level) / perMs);
    b.level--;
    st.back--;
    r.proceed();
  }

  /** Give idle keys' tokens back and forget them; `force`: the oldest go too, to make room. */
  sweep(now = Date.now(), force = false): void {
    for (const [key, st] of this.#keys) {
      const idle = now - st.usedAt >= IDLE_MS;
      if (st.asking || st.waiting !== null || (!idle && !force)) continue;
      const back = Math.floor(st.tokens) + st.back;
      if (back !== 0) this.client.ask({ limiter: this, key, state: null, want: 0, back });
      this.#keys.delete(key);
      if (force && this.#keys.size < MAX_KEYS * 0.9) return;
    }
  }

  #sweepLater(): void {
    if (this.#sweeper !== null) return;
    this.#sweeper = setTimeout(() => {
      this.#sweeper = null;
      this.sweep();
      if (this.#keys.size > 0) this.#sweepLater();
    }, SWEEP_MS);
    this.#sweeper.unref();
  }

  /** Keys tracked now (tests). */
  get size(): number {
    return this.#keys.size;
  }
}

/** One limiter per route with `rate_limit` (indexed like `routes`), or null when no route has one. */
export function compileRateLimits(routes: readonly RouteConfig[], workers: number, log: Logger, client: LeaseClient = leases): (RateLimiter | null)[] | null {
  if (!routes.some((r) => r.rateLimit !== null)) return null;
  client.log = log;
  // Named by the label the logs and metrics use (scheme, host, path): unique per route, stable across reloads.
  return routes.map((r) => (r.rateLimit === null ? null : new RateLimiter(routeLabel(r), r.rateLimit, workers, client)));
}
