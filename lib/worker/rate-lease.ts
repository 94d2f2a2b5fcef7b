/**
 * @module The worker's IPC with the master's rate-limit buckets (lib/master/rate-buckets.ts): asks of one
 * event-loop turn travel in one message, answers are matched by `seq`, and a batch the master has not answered
 * within LEASE_TIMEOUT_MS is handed back to its limiters to decide alone (rate-limit.ts); a late answer still
 * brings its tokens.
 */
import type { RateAsk, RateGrant, WorkerToMaster } from '../ipc/messages.js';
import type { Logger } from '../log/logger.js';

const LEASE_TIMEOUT_MS = 250;
const UNRESPONSIVE_LOG_MS = 10_000;

/** A route's limit as the lease client sees it; `S` is its per-key state (opaque here). */
export interface LeaseHolder<S> {
  readonly id: string;
  readonly perSecond: number;
  readonly capacity: number;
  granted(state: S, key: string, want: number, granted: number, waitMs: number, late: boolean): void;
  alone(state: S, now: number): void;
}

export interface Ask {
  readonly limiter: LeaseHolder<unknown>;
  readonly key: string;
  /** The limiter's state for this key; null: tokens given back by a key it forgot (no answer needed). */
  readonly state: unknown;
  readonly want: number;
  readonly back: number;
}

interface Batch {
  readonly asks: Ask[];
  readonly timer: NodeJS.Timeout;
  /** Timed out: the requests were decided without the master; a late answer only adds tokens. */
  expired: boolean;
}

type Send = (msg: WorkerToMaster) => boolean;

/** The worker's IPC with the master's buckets: asks batched per event-loop turn, answers matched by `seq`. */
export class LeaseClient {
  #seq = 0;
  #queue: Ask[] = [];
  #scheduled = false;
  readonly #batches = new Map<number, Batch>();
  #complainedAt = 0;
  /** The last batch went unanswered and nothing has come since: requests are decided without waiting. */
  down = false;
  log: Logger | null = null;

  constructor(private readonly send: Send = defaultSend) {}

  ask(ask: Ask): void {
    this.#queue.push(ask);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const asks = this.#queue;
    this.#queue = [];
    if (asks.length === 0) return;
    const seq = ++this.#seq;
    const timer = setTimeout(() => this.#expire(seq), LEASE_TIMEOUT_MS);
    this.#batches.set(seq, { asks, timer, expired: false });
    const msg: RateAsk[] = asks.map((a) => [a.limiter.id, a.limiter.perSecond, a.limiter.capacity, a.key, a.want, a.back]);
    if (!this.send({ type: 'rate-lease', seq, asks: msg })) this.#expire(seq);
  }

  /** The master's answer. */
  receive(seq: number, grants: readonly RateGrant[]): void {
    const batch = this.#batches.get(seq);
    if (batch === undefined) return;
    this.#batches.delete(seq);
    clearTimeout(batch.timer);
    this.down = false;
    batch.asks.forEach((a, i) => {
      const g = grants[i];
      const granted = Array.isArray(g) && g[0] > 0 ? Math.floor(g[0]) : 0;
      const waitMs = Array.isArray(g) && g[1] > 0 ? g[1] : 0;
      if (a.state !== null) a.limiter.granted(a.state, a.key, a.want, granted, waitMs, batch.expired);
    });
  }

  #expire(seq: number): void {
    const batch = this.#batches.get(seq);
    if (batch === undefined || batch.expired) return;
    batch.expired = true;
    this.down = true;
    clearTimeout(batch.timer);
    // A late answer still brings its tokens; keep the batch a while for it.
    setTimeout(() => this.#batches.delete(seq), 60_000).unref();
    const now = Date.now();
    if (now - this.#complainedAt >= UNRESPONSIVE_LOG_MS) {
      this.#complainedAt = now;
      this.log?.warn({ timeout_ms: LEASE_TIMEOUT_MS }, 'rate limits: the master did not answer in time; this worker decides from its share of each limit meanwhile');
    }
    for (const a of batch.asks) if (a.state !== null) a.limiter.alone(a.state, now);
  }
}

function defaultSend(msg: WorkerToMaster): boolean {
  if (!process.send || !process.connected) return false;
  process.send(msg, () => {});
  return true;
}

/** The worker's one lease client (main.ts routes the master's `rate-grant` answers to it). */
export const leases = new LeaseClient();

