/**
 * @module The upstream attempt: pick a target, dispatch through its undici pool, fail over. This object is the
 * undici dispatch handler of one request, across its retries. It uses the handler protocol undici's core calls
 * (onConnect, onBodySent, onRequestSent, onHeaders, onData, onComplete, onError), marked deprecated in undici 7
 * in favour of onRequestStart & co. In undici 7.30 those are an adapter over these: an `UnwrapHandler` and its
 * controller per request, and every response's headers parsed into an object we do not use (about 450 bytes a
 * request more, measured with scripts/alloc-per-request); and they have no onBodySent / onRequestSent, which
 * the upload's idle watch and early responses need.
 *
 * Failover: a connect failure moves to the next target for any method (nothing reached the upstream); a reset
 * before any response byte is retried once, on a new connection, for an idempotent request without a body.
 */
import type { Dispatcher } from 'undici';
import type { Exchange } from './exchange.js';
import { CLIENT_GONE, classify, coded, errorCode, type Failure } from './errors.js';
import { RequestBody, uploadIdleLimit, type Cancellable } from './request-body.js';
import { ResponseRelay } from './relay.js';
import type { RequestLog } from './request-log.js';
import { dispatchFresh, markDown, markUp, nextTargets, replacePool, type Target, type Upstream } from './upstream/pools.js';

/** RFC 9110 §9.2.2, compared exactly (methods are case-sensitive). Only retried when there is no body to replay. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Shared (never thrown, only handed to undici's abort): stack traces of client disconnects are worthless. */
const CLIENT_GONE_ERROR = coded(CLIENT_GONE, 'client closed the connection');

const enum State {
  /** Dispatched; no response header relayed. */
  Waiting,
  /** Response headers relayed; the body streams. */
  Streaming,
  Done,
}

const enum Retry {
  /** No reset retried yet. */
  None,
  /** The next dispatch is the retry after a reset: on a new connection of its own. */
  Fresh,
  /** The one retry is used. */
  Used,
}

export class UpstreamAttempt extends ResponseRelay implements Dispatcher.DispatchHandler, Cancellable {
  protected declare readonly ex: Exchange;
  readonly upstream: Upstream;
  /** The target of the current (or last) dispatch. */
  target: Target;
  readonly body: RequestBody | null;
  #state = State.Waiting;
  /** The targets to try after the first one, computed at the first failure. */
  #fallback: number[] | null = null;
  #fallbackPos = 0;
  #retry = Retry.None;
  /** `target.inflight` counts this request. */
  #counted = false;
  #abort: ((err?: Error) => void) | null = null;
  /** `performance.now()` of the first dispatch, and of the response headers (0: not yet). */
  dispatchedAt = 0;
  headersAt = 0;

  constructor(ex: Exchange, upstream: Upstream, first: number) {
    super(ex, upstream.config.idleTimeout);
    this.upstream = upstream;
    this.target = upstream.targets[first]!;
    this.body = ex.hasBody ? new RequestBody(ex.req, this, ex.bodyLimit) : null;
  }

  /** Dispatched and not finished: the response cannot be complete yet. */
  get running(): boolean {
    return this.#state !== State.Done;
  }

  start(): void {
    this.#dispatchTo(this.target.index);
  }

  #dispatchTo(index: number): void {
    const ex = this.ex;
    // A client that already left (an HTTP/2 stream reset in the same read as its HEADERS, the rapid-reset
    // attack) costs nothing upstream: no connection is opened for it.
    if (ex.clientLeft()) {
      this.#state = State.Done;
      return;
    }
    const target = this.upstream.targets[index]!;
    this.target = target;
    target.inflight++;
    this.#counted = true;
    this.#state = State.Waiting;
    this.#abort = null;
    if (this.dispatchedAt === 0) this.dispatchedAt = performance.now();
    const opts = { path: ex.target, method: ex.method, headers: ex.headers, body: this.body === null ? null : this.body.stream };
    if (this.#retry === Retry.Fresh) {
      this.#retry = Retry.Used;
      dispatchFresh(target, opts, this);
    } else {
      target.pool.dispatch(opts, this);
    }
  }

  /** Dispatch again once undici has finished failing the previous attempt (no re-entry into its error path). */
  #redispatch(index: number): void {
    queueMicrotask(() => {
      if (this.#state !== State.Waiting) return;
      try {
        this.#dispatchTo(index);
      } catch (err) {
        this.ex.internalError(err);
      }
    });
  }

  /** Next target after a failure: the fallback order is computed at the first one (the target is still the first pick). */
  #nextCandidate(now: number): number {
    if (this.#fallback === null) this.#fallback = nextTargets(this.upstream, this.target.index, now);
    return this.#fallbackPos < this.#fallback.length ? this.#fallback[this.#fallbackPos++]! : -1;
  }

  #release(): void {
    if (this.#counted) {
      this.#counted = false;
      this.target.inflight--;
    }
    this.unwatch();
  }

  /** Stop watching the client's upload and reading for inactivity. */
  unwatch(): void {
    this.body?.unwatch();
    this.stopWatchingDownload();
  }

  /** undici has a connection for the request (until it ends). */
  get connected(): boolean {
    return this.#abort !== null;
  }

  /** Give up on the upstream request (the client left, went idle, or sent a broken body): undici then calls onError. */
  override cancel(err: Error): void {
    const abort = this.#abort;
    if (abort !== null) abort(err);
  }

  /** Stop now, without onError's handling: the exchange answers for itself. */
  stop(err: Error): void {
    const abort = this.#abort;
    this.#abort = null;
    this.#state = State.Done;
    this.#release();
    if (abort !== null) {
      try { abort(err); } catch { /* already gone */ }
    }
  }

  // ---- undici's handler protocol -------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    const ex = this.ex;
    if (this.#state === State.Done || ex.clientLeft()) {
      // The client left while this request waited for a connection.
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
    this.#state = State.Done;
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

  #fail(err: Error): void {
    if (this.#state === State.Done) return; // already answered (e.g. an internal error stopped the attempt)
    const wasWaiting = this.#state === State.Waiting;
    this.#abort = null;
    this.#release();
    const ex = this.ex;
    let code = errorCode(err);
    if (ex.noticeGone()) code = CLIENT_GONE;
    const failure = classify(code);
    if (failure.kind !== 'client') ex.ctx.log.upstreamFailure(ex.routeIndex, failure);
    const target = this.target;
    if (wasWaiting && failure.kind !== 'client') {
      const now = Date.now();
      if (failure.kind === 'connect') {
        if (failure.markDown) this.#markFailed(target, now);
        // Nothing reached the upstream; the body (if any) is untouched, so any method may move on.
        const next = this.#nextCandidate(now);
        if (next !== -1 && (this.body === null || this.body.untouched)) {
          this.#log('warn', failure, err, 'upstream connect failed, trying the next target');
          this.#redispatch(next);
          return;
        }
      } else if (failure.kind === 'reset' && this.#retry === Retry.None && this.body === null && IDEMPOTENT.has(ex.method)) {
        // Typically the keep-alive race (the upstream closed the idle connection we reused): one more try,
        // on a new connection (another idle one could be just as stale).
        this.#retry = Retry.Fresh;
        const next = this.#nextCandidate(now);
        this.#log('warn', failure, err, 'upstream connection reset before the response, retrying');
        this.#redispatch(next === -1 ? target.index : next);
        return;
      } else if (failure.kind === 'internal') {
        replacePool(this.upstream, target);
      } else if (failure.kind === 'timeout' || (failure.kind === 'reset' && this.#retry !== Retry.None)) {
        // No response headers in time, or a reset that the retry did not cure: counts for passive health.
        this.#markFailed(target, now);
      }
    }
    this.#state = State.Done;
    if (ex.clientGone) return; // counted and summed up when the response closes
    if (!ex.res.headersSent) {
      this.#log(failure.level, failure, err, 'upstream request failed');
      ex.answer(failure.status, ex.hasBody && !ex.req.complete);
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
