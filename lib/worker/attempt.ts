/**
 * @module The upstream attempt: read the body first when it is buffered, pick a target (or wait in the queue),
 * dispatch through its pool (upstream/h1-pool.ts for HTTP/1.1, upstream/h2-pool.ts for HTTP/2), retry by the
 * upstream's policy. This object is the dispatch handler of one request, across its retries. Both pools speak the
 * handler protocol undici's core calls (onConnect, onBodySent, onRequestSent, onHeaders, onData, onComplete,
 * onError), the one these pools replaced undici's under (undici 7's newer onRequestStart & co have no onBodySent
 * / onRequestSent, which the upload's idle watch and early responses need).
 *
 * Retries follow `upstreams.NAME.retry` (upstream/retry.ts, decided in failover.ts); by default a connect failure moves to the next
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
import { UpstreamFailover } from './failover.js';
import { dispatchFresh, markUp, type Upstream } from './upstream/pools.js';
import type { Waiter } from './upstream/queue.js';

/** Shared (never thrown, only handed to the pool's abort): stack traces of client disconnects are worthless. */
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

export class UpstreamAttempt extends UpstreamFailover implements Dispatcher.DispatchHandler, Cancellable, Waiter {
  /** A body streamed upstream as it arrives; null when there is none or it is buffered. */
  readonly body: RequestBody | null;
  readonly #grpc: boolean;
  #buffer: BodyBuffer | null = null;
  #state = State.Before;
  /** `target.inflight` counts this request. */
  #counted = false;
  #abort: ((err?: Error) => void) | null = null;
  #deadline: NodeJS.Timeout | null = null;
  /** `performance.now()` of the response headers (0: not yet). */
  headersAt = 0;

  constructor(ex: Exchange, upstream: Upstream, grpc: boolean) {
    super(ex, upstream);
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
    else this.choose();
  }

  /** The buffered body is complete (or failed: 413, 408, a client gone). */
  #buffered(err: Error | null): void {
    if (this.#state === State.Done) return;
    const ex = this.ex;
    if (err !== null) {
      let code = errorCode(err);
      if (ex.noticeGone()) code = CLIENT_GONE;
      const failure = classify(code);
      this.finish();
      if (ex.clientGone) return;
      ex.ctx.log.failure('warn', failure, err, { upstream: this.upstream.config.name, target: null }, ex, 'request body not received');
      ex.answer(failure.status, true);
      return;
    }
    // A body that came chunked (or HTTP/2 without a length) has a length now.
    if (!hasHeader(ex.headers, 'content-length')) ex.headers.push('content-length', String(this.#buffer!.length));
    this.choose();
  }

  /** Nothing dispatched yet (reading a buffered body, or queued). */
  protected get before(): boolean {
    return this.#state === State.Before;
  }

  // ---- dispatch -----------------------------------------------------------------------------------------

  protected dispatchTo(index: number): void {
    const ex = this.ex;
    // A client that already left (an HTTP/2 stream reset in the same read as its HEADERS, the rapid-reset
    // attack) costs nothing upstream: no connection is opened for it.
    if (ex.clientLeft()) {
      this.finish();
      return;
    }
    const target = this.upstream.targets[index]!;
    this.target = target;
    target.inflight++;
    this.#counted = true;
    this.attempts++;
    this.#state = State.Waiting;
    this.#abort = null;
    if (this.dispatchedAt === 0) this.dispatchedAt = performance.now();
    const buffer = this.#buffer;
    const body = buffer !== null ? buffer.source() : this.body === null ? null : this.body.stream;
    // A body buffered in a file is a stream the HTTP/2 pool can ask again for, should its stream be refused.
    const replay = buffer !== null && !Buffer.isBuffer(body) ? () => buffer.source() : undefined;
    // The retry budget (`retry.timeout`) also ends the HTTP/2 pool's own tries after refused streams.
    const budget = this.upstream.config.retry.timeout;
    const retryUntil = budget > 0 ? this.dispatchedAt + budget : undefined;
    const opts = { path: ex.target, method: ex.method, headers: ex.headers, body, replay, retryUntil };
    if (this.fresh) {
      this.fresh = false;
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
        this.dispatchTo(index);
      } catch (err) {
        this.ex.internalError(err);
      }
    });
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
  protected finish(): void {
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
      this.finish();
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
    this.finish();
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
    if (statusCode >= 502 && statusCode <= 504 && this.retryOnStatus(statusCode)) {
      this.#abort?.(coded(RETRY_STATUS, `the upstream answered ${statusCode}`));
      return true;
    }
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
    this.finish();
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

  protected get replayable(): boolean {
    return this.#buffer !== null || this.body === null || this.body.untouched;
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
    if (code === RETRY_STATUS && this.statusRetryTo !== -1) {
      const next = this.statusRetryTo;
      this.statusRetryTo = -1;
      this.retries++;
      this.logFailure('warn', failure, err, 'trying the next target');
      return this.#redispatch(next);
    }
    if (failure.kind !== 'client') ex.ctx.log.upstreamFailure(ex.routeIndex, failure);
    if (wasWaiting && failure.kind !== 'client') {
      const next = this.retryAfter(failure, err);
      if (next !== -1) return this.#redispatch(next);
    }
    this.finish();
    if (ex.clientGone) return; // counted and summed up when the response closes
    if (!ex.res.headersSent) {
      this.logFailure(failure.level, failure, err, 'upstream request failed');
      ex.answer(failure.status, ex.hasBody && !ex.req.complete);
    } else if (this.#grpc && ex.res.req.httpVersionMajor === 2) {
      this.logFailure(failure.level, failure, err, 'upstream failed after the response started, call ended with a gRPC status');
      this.stopWatchingDownload();
      const [status, message] = grpcStatusOf(failure.status);
      endGrpcCall(ex.res, status, code === DEADLINE ? 'deadline exceeded' : message);
    } else {
      this.logFailure(failure.level, failure, err, 'upstream failed after the response started, response cut');
      this.cutResponse();
    }
  }

}

function hasHeader(flat: readonly string[], lower: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.length === lower.length && flat[i]!.toLowerCase() === lower) return true;
  return false;
}
