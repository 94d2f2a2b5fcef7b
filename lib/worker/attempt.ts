/**
 * @module The upstream attempt: read the body first when it is buffered, pick a target (or wait in the queue),
 * dispatch through its pool (undici for HTTP/1.1, upstream/h2-pool.ts for HTTP/2), retry by the upstream's
 * policy. This object is the dispatch handler of one request, across its retries. It uses the handler protocol
 * undici's core calls (onConnect, onBodySent, onRequestSent, onHeaders, onData, onComplete, onError), marked
 * deprecated in undici 7 in favour of onRequestStart & co. In undici 7.30 those are an adapter over these: an
 * `UnwrapHandler` and its controller per request, and every response's headers parsed into an object we do not
 * use (about 450 bytes a request more, measured with scripts/alloc-per-request); and they have no onBodySent /
 * onRequestSent, which the upload's idle watch and early responses need.
 *
 * Retries follow `upstreams.NAME.retry` (upstream/retry.ts); by default a connect failure moves to the next
 * target for any method and a reset before any response byte is retried once, on a new connection, for an
 * idempotent request without a body. A streamed body is never sent twice; a buffered one is replayed.
 */
import type { Dispatcher } from 'undici';
import { recorder } from '../metrics/recorder.js';
import type { Exchange } from './exchange.js';
import { CLIENT_GONE, DEADLINE, RETRY_STATUS, classify, coded, errorCode, type Failure } from './errors.js';
import { endGrpcCall, grpcStatusOf, grpcTimeout, isGrpc } from './grpc.js';
import { RequestBody, uploadIdleLimit, type Cancellable } from './request-body.js';
import { BodyBuffer } from './request-buffer.js';
import { ResponseRelay } from './relay.js';
import type { RequestLog } from './request-log.js';
import { anyUp, usable } from './upstream/balancer.js';
import { hashKeyOf } from './upstream/hash-key.js';
import { dispatchFresh, markDown, markUp, nextTargets, replacePool, type Target, type Upstream } from './upstream/pools.js';
import type { Waiter } from './upstream/queue.js';
import { conditionOf, mayRetry, statusCondition } from './upstream/retry.js';

/** Shared (never thrown, only handed to undici's abort): stack traces of client disconnects are worthless. */
const CLIENT_GONE_ERROR = coded(CLIENT_GONE, 'client closed the connection');

const enum State {
  /** Reading a buffered body, or waiting in the queue: nothing dispatched. */
  Before,
  /** Dispatched; no response header relayed. */
  Waiting,
  /** Response headers relayed; the body streams. */
  Streaming,
  Done,
}

/** Proxy `ex` to `upstream`: the entry of the upstream phase (exchange.ts). */
export function proxy(ex: Exchange, upstream: Upstream): void {
  const grpc = isGrpc(ex.req.rawHeaders);
  if (grpc && ex.req.httpVersionMajor !== 2 && upstream.config.protocol === 'http2') {
    // A gRPC call needs HTTP/2 end to end (trailers): refuse clearly instead of a call that can never finish.
    ex.ctx.log.refused(426, 'a gRPC call over HTTP/1.1 to an HTTP/2 upstream', ex.client, ex);
    return ex.answer(426, true);
  }
  const attempt = new UpstreamAttempt(ex, upstream, grpc);
  ex.attempt = attempt;
  attempt.begin();
}

export class UpstreamAttempt extends ResponseRelay implements Dispatcher.DispatchHandler, Cancellable, Waiter {
  protected declare readonly ex: Exchange;
  readonly upstream: Upstream;
  /** The target of the current (or last) dispatch. */
  target: Target;
  /** A body streamed upstream as it arrives; null when there is none or it is buffered. */
  readonly body: RequestBody | null;
  readonly #grpc: boolean;
  #buffer: BodyBuffer | null = null;
  #state = State.Before;
  /** `balance: hash`: the request's key (undefined for other balancers). */
  #key: string | undefined = undefined;
  /** The targets to try after the first one, computed at the first failure. */
  #fallback: number[] | null = null;
  #fallbackPos = 0;
  #attempts = 0;
  /** Retries after anything but a connect failure. */
  #retries = 0;
  /** The next dispatch goes on a new connection of its own (the retry after a reset). */
  #fresh = false;
  /** A retry after a 502/503/504 answer: the target to try next. */
  #statusRetryTo = -1;
  /** `target.inflight` counts this request. */
  #counted = false;
  #abort: ((err?: Error) => void) | null = null;
  #deadline: NodeJS.Timeout | null = null;
  /** `performance.now()` of the first dispatch, and of the response headers (0: not yet). */
  dispatchedAt = 0;
  headersAt = 0;

  constructor(ex: Exchange, upstream: Upstream, grpc: boolean) {
    super(ex, upstream.config.idleTimeout);
    this.upstream = upstream;
    this.target = upstream.targets[0]!;
    this.#grpc = grpc;
    // gRPC calls stream both ways: never buffered.
    const buffered = ex.hasBody && ex.ctx.limits.requestBuffering && !grpc;
    this.body = ex.hasBody && !buffered ? new RequestBody(ex.req, this, ex.bodyLimit) : null;
    if (buffered) this.#buffer = new BodyBuffer(ex.req, ex.bodyLimit, ex.ctx.limits.requestBufferSize, (err) => this.#buffered(err));
  }

  /** Not finished: the response cannot be complete yet. */
  get running(): boolean {
    return this.#state !== State.Done;
  }

  begin(): void {
    const ex = this.ex;
    if (this.#grpc) {
      const deadline = grpcTimeout(ex.req.rawHeaders);
      if (deadline > 0) this.#deadline = setTimeout(() => this.#deadlineExceeded(), deadline);
    }
    const buffer = this.#buffer;
    if (buffer !== null) buffer.start(ex.res, ex.ctx.sweeper, ex.ctx.limits.bodyTimeout);
    else this.#choose();
  }

  /** The buffered body is complete (or failed: 413, 408, a client gone). */
  #buffered(err: Error | null): void {
    if (this.#state === State.Done) return;
    const ex = this.ex;
    if (err !== null) {
      let code = errorCode(err);
      if (ex.noticeGone()) code = CLIENT_GONE;
      const failure = classify(code);
      this.#finish();
      if (ex.clientGone) return;
      ex.ctx.log.failure('warn', failure, err, { upstream: this.upstream.config.name, target: null }, ex, 'request body not received');
      ex.answer(failure.status, true);
      return;
    }
    // A body that came chunked (or HTTP/2 without a length) has a length now.
    if (!hasHeader(ex.headers, 'content-length')) ex.headers.push('content-length', String(this.#buffer!.length));
    this.#choose();
  }

  /** First target: the balancer's pick, the queue when every live target is full, 502 when none is live. */
  #choose(): void {
    const ex = this.ex;
    const up = this.upstream;
    const now = Date.now();
    if (up.config.hashKey !== null) this.#key = hashKeyOf(up.config.hashKey, ex.req.rawHeaders, ex.client, ex.target);
    const first = up.balancer.pick(now, this.#key);
    if (first !== -1) return this.#dispatchTo(first);
    if (!anyUp(up.targets, now)) return this.#noLiveTarget();
    if (up.queue !== null && up.queue.add(this)) return;
    recorder.queued(up.config.name, 'full', -1);
    this.#overloaded(up.queue === null ? 'every target is at max_connections' : 'every target is at max_connections and the queue is full', -1);
  }

  // ---- the queue (upstream/queue.ts) -----------------------------------------------------------------------

  proceed(now: number): boolean {
    if (this.#state !== State.Before) return true;
    const up = this.upstream;
    const next = up.balancer.pick(now, this.#key);
    if (next === -1) {
      if (anyUp(up.targets, now)) return false;
      this.#noLiveTarget();
      return true;
    }
    recorder.queued(up.config.name, 'dispatched', up.queue!.waited(this));
    this.#dispatchTo(next);
    return true;
  }

  expired(waited: number): void {
    if (this.#state !== State.Before) return;
    recorder.queued(this.upstream.config.name, 'timeout', waited);
    this.#overloaded(`no target under max_connections within queue.timeout (${this.upstream.queue!.timeout} ms)`, waited);
  }

  /** 503: no connection free in time (or at all). */
  #overloaded(why: string, waited: number): void {
    const ex = this.ex;
    this.#finish();
    const c = this.upstream.config;
    ex.ctx.log.error.error({ upstream: c.name, route: ex.route, request_id: ex.requestId, waited: waited < 0 ? null : Math.round(waited) }, `upstream overloaded, 503: ${why}`);
    ex.answer(503, ex.hasBody && !ex.req.complete);
  }

  #noLiveTarget(): void {
    this.#finish();
    noLiveTarget(this.ex, this.upstream);
  }

  // ---- dispatch -----------------------------------------------------------------------------------------

  #dispatchTo(index: number): void {
    const ex = this.ex;
    // A client that already left (an HTTP/2 stream reset in the same read as its HEADERS, the rapid-reset
    // attack) costs nothing upstream: no connection is opened for it.
    if (ex.clientLeft()) {
      this.#finish();
      return;
    }
    const target = this.upstream.targets[index]!;
    this.target = target;
    target.inflight++;
    this.#counted = true;
    this.#attempts++;
    this.#state = State.Waiting;
    this.#abort = null;
    if (this.dispatchedAt === 0) this.dispatchedAt = performance.now();
    const body = this.#buffer !== null ? this.#buffer.source() : this.body === null ? null : this.body.stream;
    const opts = { path: ex.target, method: ex.method, headers: ex.headers, body };
    if (this.#fresh) {
      this.#fresh = false;
      dispatchFresh(target, opts, this);
    } else {
      target.pool.dispatch(opts, this);
    }
  }

  /** Dispatch again once the pool has finished failing the previous attempt (no re-entry into its error path). */
  #redispatch(index: number): void {
    this.#state = State.Waiting;
    queueMicrotask(() => {
      if (this.#state !== State.Waiting) return;
      try {
        this.#dispatchTo(index);
      } catch (err) {
        this.ex.internalError(err);
      }
    });
  }

  /** Next target after a failure, in the balancer's order; targets now down or full are skipped. */
  #nextCandidate(now: number): number {
    this.#fallback ??= nextTargets(this.upstream, this.target.index, now, this.#key);
    const targets = this.upstream.targets;
    while (this.#fallbackPos < this.#fallback.length) {
      const i = this.#fallback[this.#fallbackPos++]!;
      if (usable(targets[i]!, now)) return i;
    }
    return -1;
  }

  #release(): void {
    if (this.#counted) {
      this.#counted = false;
      this.target.inflight--;
      const queue = this.upstream.queue;
      // A slot is free: the head of the queue may take it (after the pool is done with this request).
      if (queue !== null && queue.depth > 0) queueMicrotask(() => queue.wake(Date.now()));
    }
    this.unwatch();
  }

  /** Done with the upstream: the deadline and the buffered body go. */
  #finish(): void {
    this.#state = State.Done;
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#deadline = null;
    this.#buffer?.dispose();
  }

  /** Stop watching the client's upload and reading for inactivity. */
  unwatch(): void {
    this.body?.unwatch();
    this.stopWatchingDownload();
  }

  /** The pool has a connection for the request (until it ends). */
  get connected(): boolean {
    return this.#abort !== null;
  }

  /** Give up on the upstream request (the client left, went idle, or sent a broken body): the pool then calls onError. */
  override cancel(err: Error): void {
    if (this.#state === State.Before) {
      // Still reading the body, or queued: nothing upstream to cancel.
      const waited = this.upstream.queue?.remove(this) ?? -1;
      if (waited >= 0) recorder.queued(this.upstream.config.name, 'left', waited);
      this.#buffer?.abort();
      this.#finish();
      return;
    }
    const abort = this.#abort;
    if (abort !== null) abort(err);
  }

  /** Stop now, without onError's handling: the exchange answers for itself. */
  stop(err: Error): void {
    const abort = this.#abort;
    this.#abort = null;
    if (this.#state === State.Before) this.cancel(err);
    this.#finish();
    this.#release();
    if (abort !== null) {
      try { abort(err); } catch { /* already gone */ }
    }
  }

  /** The gRPC call's deadline (`grpc-timeout`) passed: DEADLINE_EXCEEDED, whatever the upstream is doing. */
  #deadlineExceeded(): void {
    this.#deadline = null;
    const err = coded(DEADLINE, 'the gRPC deadline (grpc-timeout) passed');
    if (this.#state === State.Before) {
      this.cancel(err);
      const ex = this.ex;
      if (!ex.clientGone) ex.answer(504, false);
      return;
    }
    const abort = this.#abort;
    if (abort !== null) abort(err);
    else this.#fail(err); // not connected yet: the pool calls onConnect later and is told to stop then
  }

  // ---- the pool's handler protocol ------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    const ex = this.ex;
    if (this.#state === State.Done || ex.clientLeft()) {
      // The client left (or the deadline passed) while this request waited for a connection.
      abort(CLIENT_GONE_ERROR);
      return;
    }
    this.#abort = abort;
    const body = this.body;
    if (body !== null) body.connected(ex.res, ex.ctx.sweeper, uploadIdleLimit(ex.ctx.limits.bodyTimeout, this.upstream.config.idleTimeout));
  }

  onBodySent(): void {
    this.body?.progressed();
  }

  onRequestSent(): void {
    this.body?.finished();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 100 / 103: not relayed
    if (statusCode >= 502 && statusCode <= 504 && this.#retryOnStatus(statusCode)) return true;
    this.headersAt = performance.now();
    const target = this.target;
    if (target.fails !== 0 || target.downUntil !== 0) markUp(target);
    const ex = this.ex;
    if (ex.clientGone) return true;
    // The upstream answered before reading our whole upload: the client's rest cannot be consumed sensibly.
    this.relayHead(statusCode, rawHeaders, statusText, ex.requestId, resume, this.body !== null && !this.body.sent);
    this.#state = State.Streaming;
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.relayData(chunk, this.ex.clientGone);
  }

  onComplete(trailers: string[] | null): void {
    this.#finish();
    this.#abort = null;
    this.#release();
    const ex = this.ex;
    if (ex.clientGone) return;
    try {
      this.relayEnd(trailers);
    } catch (err) {
      ex.internalError(err);
    }
  }

  onError(err: Error): void {
    try {
      this.#fail(err);
    } catch (bug) {
      this.ex.internalError(bug);
    }
  }

  // ---- failures ------------------------------------------------------------------------------------------

  /** The upstream answered 502/503/504: try the next target instead, when the policy says so. */
  #retryOnStatus(status: number): boolean {
    const condition = statusCondition(status);
    if (!this.upstream.config.retry.on.includes(condition!) || !this.#mayRetry(condition)) return false;
    const now = Date.now();
    const next = this.#nextCandidate(now);
    if (next === -1) return false;
    // Passive health counts the answers the policy treats as failures (nginx's `http_502` and co).
    this.#markFailed(this.target, now);
    this.#statusRetryTo = next;
    this.#abort?.(coded(RETRY_STATUS, `the upstream answered ${status}`));
    return true;
  }

  #mayRetry(condition: ReturnType<typeof conditionOf>): boolean {
    const replayable = this.#buffer !== null || this.body === null || this.body.untouched;
    const elapsed = this.dispatchedAt === 0 ? 0 : performance.now() - this.dispatchedAt;
    return mayRetry(this.upstream.config.retry, condition, { method: this.ex.method, replayable, hasBody: this.ex.hasBody, attempts: this.#attempts, retries: this.#retries, elapsed });
  }

  #fail(err: Error): void {
    if (this.#state === State.Done) return; // already answered (e.g. an internal error stopped the attempt)
    const wasWaiting = this.#state === State.Waiting;
    this.#abort = null;
    this.#release();
    const ex = this.ex;
    let code = errorCode(err);
    if (ex.noticeGone()) code = CLIENT_GONE;
    const failure = classify(code);
    const target = this.target;
    if (code === RETRY_STATUS && this.#statusRetryTo !== -1) {
      const next = this.#statusRetryTo;
      this.#statusRetryTo = -1;
      this.#retries++;
      this.#log('warn', failure, err, 'trying the next target');
      return this.#redispatch(next);
    }
    if (failure.kind !== 'client') ex.ctx.log.upstreamFailure(ex.routeIndex, failure);
    if (wasWaiting && failure.kind !== 'client') {
      const now = Date.now();
      // Passive health: connect failures and timeouts count; a reset only when it came on a retry (the first
      // is typically the keep-alive race); undici refusing our arguments replaces the pool instead.
      if ((failure.kind === 'connect' && failure.markDown) || failure.kind === 'timeout' || (failure.kind === 'reset' && this.#retries > 0)) this.#markFailed(target, now);
      else if (failure.kind === 'internal') replacePool(this.upstream, target);
      const condition = conditionOf(failure.kind);
      if (this.#mayRetry(condition)) {
        let next = this.#nextCandidate(now);
        // The keep-alive race: with no other target, the same one again, on a new connection.
        if (next === -1 && condition === 'reset' && this.#retries === 0) next = target.index;
        if (next !== -1) {
          if (condition !== 'connect_failure') this.#retries++;
          if (condition === 'reset') this.#fresh = true;
          this.#log('warn', failure, err, condition === 'connect_failure' ? 'upstream connect failed, trying the next target' : 'upstream connection reset before the response, retrying');
          return this.#redispatch(next);
        }
      }
    }
    this.#finish();
    if (ex.clientGone) return; // counted and summed up when the response closes
    if (!ex.res.headersSent) {
      this.#log(failure.level, failure, err, 'upstream request failed');
      ex.answer(failure.status, ex.hasBody && !ex.req.complete);
    } else if (this.#grpc && ex.res.req.httpVersionMajor === 2) {
      this.#log(failure.level, failure, err, 'upstream failed after the response started, call ended with a gRPC status');
      this.stopWatchingDownload();
      const [status, message] = grpcStatusOf(failure.status);
      endGrpcCall(ex.res, status, code === DEADLINE ? 'deadline exceeded' : message);
    } else {
      this.#log(failure.level, failure, err, 'upstream failed after the response started, response cut');
      this.cutResponse();
    }
  }

  /** Passive health: one failure of `target`; say so when it takes the target out. */
  #markFailed(target: Target, now: number): void {
    if (!markDown(target, now)) return;
    const c = this.upstream.config;
    this.ex.ctx.log.error.error({ upstream: c.name, target: target.address, max_fails: c.maxFails, fail_timeout: c.failTimeout }, 'upstream target taken out for fail_timeout after max_fails failures');
  }

  #log(level: 'info' | 'warn' | 'error', failure: Failure, err: Error, msg: string): void {
    const ex = this.ex;
    ex.ctx.log.failure(level, failure, err, { upstream: this.upstream.config.name, target: this.target.address }, ex, msg);
  }
}

function hasHeader(flat: readonly string[], lower: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.length === lower.length && flat[i]!.toLowerCase() === lower) return true;
  return false;
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
