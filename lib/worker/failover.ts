/**
 * @module Target choice and failover: an upstream attempt's first target (or its wait in the queue; 503 when full),
 * the next target after a failure when the retry policy (upstream/retry.ts) allows it, passive health marks, and
 * the answer when no target is live. The state lives in the base class of the attempt (attempt.ts), so that one
 * object per request carries both, as the relay does.
 */
import type { Exchange } from './exchange.js';
import type { Failure } from './errors.js';
import { ResponseRelay } from './relay.js';
import type { RequestLog } from './request-log.js';
import { recorder } from '../metrics/recorder.js';
import { anyUp, usable } from './upstream/balancer.js';
import { hashKeyOf } from './upstream/hash-key.js';
import { markDown, nextTargets, type Target, type Upstream } from './upstream/pools.js';
import { conditionOf, mayRetry, statusCondition } from './upstream/retry.js';

export abstract class UpstreamFailover extends ResponseRelay {
  protected declare readonly ex: Exchange;
  readonly upstream: Upstream;
  /** The target of the current (or last) dispatch. */
  target: Target;
  /** `balance: hash`: the request's key (undefined for other balancers). */
  protected key: string | undefined = undefined;
  protected attempts = 0;
  /** Retries after anything but a connect failure. */
  protected retries = 0;
  /** The next dispatch goes on a new connection of its own (the retry after a reset). */
  protected fresh = false;
  /** A retry after a 502/503/504 answer: the target to try next. */
  protected statusRetryTo = -1;
  /** The targets to try after the first one, computed at the first failure. */
  #fallback: number[] | null = null;
  #fallbackPos = 0;
  /** `performance.now()` of the first dispatch (0: not yet). */
  dispatchedAt = 0;

  constructor(ex: Exchange, upstream: Upstream) {
    super(ex, upstream.config.idleTimeout);
    this.upstream = upstream;
    this.target = upstream.targets[0]!;
  }

  /** The request body can be sent again (none, buffered, or not a byte of it streamed yet). */
  protected abstract get replayable(): boolean;
  /** Nothing dispatched yet (reading a buffered body, or queued). */
  protected abstract get before(): boolean;
  protected abstract dispatchTo(index: number): void;
  /** Done with the upstream, whatever the answer. */
  protected abstract finish(): void;

  /** First target: the balancer's pick, the queue when every live target is full, 502 when none is live. */
  protected choose(): void {
    const ex = this.ex;
    const up = this.upstream;
    const now = Date.now();
    if (up.config.hashKey !== null) this.key = hashKeyOf(up.config.hashKey, ex.req.rawHeaders, ex.client, ex.target);
    const first = up.balancer.pick(now, this.key);
    if (first !== -1) return this.dispatchTo(first);
    if (!anyUp(up.targets, now)) return this.#noLiveTarget();
    if (up.queue !== null && up.queue.add(this)) return;
    recorder.queued(up.config.name, 'full', -1);
    this.#overloaded(up.queue === null ? 'every target is at max_connections' : 'every target is at max_connections and the queue is full', -1);
  }

  // ---- the queue (upstream/queue.ts) ----

  proceed(now: number): boolean {
    if (!this.before) return true;
    const up = this.upstream;
    const next = up.balancer.pick(now, this.key);
    if (next === -1) {
      if (anyUp(up.targets, now)) return false;
      this.#noLiveTarget();
      return true;
    }
    recorder.queued(up.config.name, 'dispatched', up.queue!.waited(this));
    this.dispatchTo(next);
    return true;
  }

  expired(waited: number): void {
    if (!this.before) return;
    recorder.queued(this.upstream.config.name, 'timeout', waited);
    this.#overloaded(`no target under max_connections within queue.timeout (${this.upstream.queue!.timeout} ms)`, waited);
  }

  /** 503: no connection free in time (or at all). */
  #overloaded(why: string, waited: number): void {
    const ex = this.ex;
    this.finish();
    const c = this.upstream.config;
    ex.ctx.log.error.error({ upstream: c.name, route: ex.route, request_id: ex.requestId, waited: waited < 0 ? null : Math.round(waited) }, `upstream overloaded, 503: ${why}`);
    ex.answer(503, ex.hasBody && !ex.req.complete);
  }

  #noLiveTarget(): void {
    this.finish();
    noLiveTarget(this.ex, this.upstream);
  }


  /** The upstream answered 502/503/504: true when the policy sends the request to `statusRetryTo` instead. */
  protected retryOnStatus(status: number): boolean {
    const condition = statusCondition(status);
    if (!this.upstream.config.retry.on.includes(condition!) || !this.#mayRetry(condition)) return false;
    const now = Date.now();
    const next = this.#nextCandidate(now);
    if (next === -1) return false;
    // Passive health counts the answers the policy treats as failures (nginx's `http_502` and co).
    this.#markFailed(this.target, now);
    this.statusRetryTo = next;
    return true;
  }

  /**
   * A dispatched request failed before its response: count it for passive health, and return the target to try
   * next under the retry policy (-1: none, the failure is answered). Logs the retry it decides on.
   */
  protected retryAfter(failure: Failure, err: Error): number {
    const now = Date.now();
    const target = this.target;
    // Passive health: connect failures and timeouts count; a reset only when it came on a retry (the first
    // is typically the keep-alive race).
    if ((failure.kind === 'connect' && failure.markDown) || failure.kind === 'timeout' || (failure.kind === 'reset' && this.retries > 0)) this.#markFailed(target, now);
    const condition = conditionOf(failure.kind);
    if (!this.#mayRetry(condition)) return -1;
    let next = this.#nextCandidate(now);
    // The keep-alive race: with no other target, the same one again, on a new connection.
    if (next === -1 && condition === 'reset' && this.retries === 0) next = target.index;
    if (next === -1) return -1;
    if (condition !== 'connect_failure') this.retries++;
    if (condition === 'reset') this.fresh = true;
    this.logFailure('warn', failure, err, condition === 'connect_failure' ? 'upstream connect failed, trying the next target' : 'upstream connection reset before the response, retrying');
    return next;
  }

  #mayRetry(condition: ReturnType<typeof conditionOf>): boolean {
    const elapsed = this.dispatchedAt === 0 ? 0 : performance.now() - this.dispatchedAt;
    return mayRetry(this.upstream.config.retry, condition, { method: this.ex.method, replayable: this.replayable, hasBody: this.ex.hasBody, attempts: this.attempts, retries: this.retries, elapsed });
  }

  /** Next target after a failure, in the balancer's order; targets now down or full are skipped. */
  #nextCandidate(now: number): number {
    this.#fallback ??= nextTargets(this.upstream, this.target.index, now, this.key);
    const targets = this.upstream.targets;
    while (this.#fallbackPos < this.#fallback.length) {
      const i = this.#fallback[this.#fallbackPos++]!;
      if (usable(targets[i]!, now)) return i;
    }
    return -1;
  }

  /** Passive health: one failure of `target`; say so when it takes the target out. */
  #markFailed(target: Target, now: number): void {
    if (!markDown(target, now)) return;
    const c = this.upstream.config;
    this.ex.ctx.log.error.error({ upstream: c.name, target: target.address, max_fails: c.maxFails, fail_timeout: c.failTimeout }, 'upstream target taken out for fail_timeout after max_fails failures');
  }

  protected logFailure(level: 'info' | 'warn' | 'error', failure: Failure, err: Error, msg: string): void {
    const ex = this.ex;
    ex.ctx.log.failure(level, failure, err, { upstream: this.upstream.config.name, target: this.target.address }, ex, msg);
  }
}


/** Every target is down (health checks, or passive marks): 502 now rather than a wait on a dead target. */
export function noLiveTarget(ex: Exchange, upstream: Upstream): void {
  logNoLiveTarget(ex.ctx.log, upstream, ex.route, ex.requestId);
  ex.answer(502, false);
}

/** Say so at most once a second per upstream, not once per request. */
export function logNoLiveTarget(log: RequestLog, upstream: Upstream, route: string | null, requestId: string): void {
  const now = Date.now();
  if (now - upstream.noLiveLoggedAt < 1000) return;
  upstream.noLiveLoggedAt = now;
  log.error.error({ upstream: upstream.config.name, route, request_id: requestId }, 'no live upstream target: every target is down');
}
