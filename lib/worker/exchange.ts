/**
 * @module One client request from arrival to its access-log line: route it, answer it (return route, error
 * page) or proxy it through undici with failover, stream both bodies, map failures to statuses.
 *
 * The Exchange object is itself the undici dispatch handler (undici's core handler protocol: onConnect,
 * onHeaders, onData, onComplete, onError, which `Request` calls directly; the v7 `onRequestStart` style would
 * add a wrapper and a controller per request). One object per request, no closures: the response listeners
 * are module functions that find their Exchange through a symbol on the response.
 */
import type http from 'node:http';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { constants as h2constants } from 'node:http2';

const { NGHTTP2_INTERNAL_ERROR } = h2constants;
import type { Readable } from 'node:stream';
import type { Logs } from '../log/logger.js';
import { BadRequest, buildResponseHeaders, buildUpstreamHead, displayAddress, nextRequestId, type UpstreamHead } from './headers.js';
import { normalizeHost, routingPath, splitAbsoluteTarget, type RouteEntry, type Router } from './router.js';
import { BAD_RESPONSE, CLIENT_BAD_BODY, CLIENT_GONE, CLIENT_IDLE, classify, errorCode, type Failure } from './errors.js';
import { sendError, sendReturn, type CompiledReturn } from './respond.js';
import { dispatchFresh, markDown, markUp, nextTargets, replacePool, type Target, type Upstream } from './upstream/pools.js';
import type { ClientLimits } from '../config/types.js';
import { BodyLimit, awaitsContinue, headersExceeded, isValidHost } from './limits.js';
import type { IdleSweeper, IdleWatched } from './idle.js';
import { logAccess, ms, protocolName } from './access-log.js';
import { recorder } from '../metrics/recorder.js';

/** What a route does, compiled once per config; indexed like `config.routes`. */
export interface RouteAction {
  readonly ret: CompiledReturn | null;
  readonly upstream: Upstream | null;
  /** Request body limit in bytes; 0 = none. */
  readonly maxBodySize: number;
}

export interface HandlerContext {
  readonly router: Router;
  readonly actions: readonly RouteAction[];
  readonly logs: Logs;
  readonly sweeper: IdleSweeper;
  readonly limits: ClientLimits;
}

const kExchange = Symbol('baton.exchange');
type Response = http.ServerResponse & { [kExchange]?: Exchange };

/** RFC 9110 §9.2.2. Only retried after a reset when there is no body to replay. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** undici refuses these request-target characters, and each refusal wedges a pool slot. */
const INVALID_PATH = /[^\u0021-\u00ff]/;
const EMPTY: string[] = [];

/** Shared (never thrown, only handed to undici's abort): stack traces of client disconnects are worthless. */
const CLIENT_GONE_ERROR = Object.assign(new Error('client closed the connection'), { code: CLIENT_GONE });

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const enum Phase {
  /** Not (yet) sent upstream. */
  Local,
  /** Dispatched; no response header written. */
  Waiting,
  /** Response headers written; the body streams. */
  Streaming,
  Done,
}

const enum Watch { None, Upload, Download }

/** A stalled upload is bounded by the client's `body_timeout` and the upstream's `idle_timeout` (either direction), whichever is shorter; 0 = off. */
function uploadIdleLimit(bodyTimeout: number, idleTimeout: number): number {
  if (bodyTimeout === 0) return idleTimeout;
  return idleTimeout === 0 ? bodyTimeout : Math.min(bodyTimeout, idleTimeout);
}

export class Exchange implements IdleWatched {
  readonly ctx: HandlerContext;
  readonly req: http.IncomingMessage;
  readonly res: Response;
  readonly start = performance.now();
  readonly client: string;
  readonly method: string;
  /** req.socket at arrival (see `closed`). */
  readonly socket: http.IncomingMessage['socket'] | null;
  requestId = '';
  hostname = '';
  entry: RouteEntry | null = null;
  upstream: Upstream | null = null;
  target: Target | null = null;
  headers: string[] = EMPTY;
  path = '';
  hasBody = false;
  body: Readable | null = null;
  phase = Phase.Local;
  status = 0;
  bytes = 0;
  upstreamAt = 0;
  headersAt = 0;
  first = -1;
  fallback: number[] | null = null;
  fallbackPos = 0;
  retried = false;
  /** The next dispatch goes out on a new connection (the retry after a reset). */
  fresh = false;
  /** Limit on a body without Content-Length, counted as it streams (0 = not counted). */
  bodyLimit = 0;
  /** The client waits for `100 Continue`: sent once an upstream connection is ready for its body. */
  expect100 = false;
  counted = false;
  requestSent = false;
  clientGone = false;
  /** We cut the response ourselves (failure after headers): not a client abort. */
  cut = false;
  paused = false;
  drainHooked = false;
  watching = Watch.None;
  idleSince = 0;
  idleLimit = 0;
  abortUpstream: ((err?: Error) => void) | null = null;
  resumeUpstream: (() => void) | null = null;

  constructor(ctx: HandlerContext, req: http.IncomingMessage, res: http.ServerResponse) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.method = req.method ?? 'GET';
    // Read now: undici detaches req.socket when it destroys a consumed request body.
    this.socket = req.socket ?? null;
    this.client = displayAddress(this.socket?.remoteAddress);
    (res as Response)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  // ---- routing and local answers -------------------------------------------------------------------------

  run(): void {
    const req = this.req;
    let target = req.url ?? '';
    let authority: string | undefined;
    if (target.charCodeAt(0) !== 47 /* / */) {
      const abs = splitAbsoluteTarget(target);
      if (abs === null) return this.reject('unsupported request target');
      authority = abs.authority;
      target = abs.path;
    }
    // The HTTP/1 parser also accepts `HTTP/0.9`-style lines and `HTTP/2.0` in a request line; real HTTP/2
    // requests come from the http2 compat layer (they have a stream).
    if (req.httpVersionMajor !== 1 && (req as { stream?: unknown }).stream === undefined) return this.refuse(505, 'unsupported HTTP version');
    if (this.method === 'CONNECT') return this.local(405, true);
    if (headersExceeded(req, this.ctx.limits)) return this.refuse(431, 'too many or too large request headers');
    let head: UpstreamHead;
    try {
      head = buildUpstreamHead(req.rawHeaders, {
        clientAddress: this.client,
        proto: (req.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http',
        authority,
      });
    } catch (err) {
      if (err instanceof BadRequest) return this.reject(err.message);
      throw err;
    }
    this.requestId = head.requestId;
    if (!isValidHost(head.authority)) return this.reject('invalid host');
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (head.chunked && req.httpVersionMinor === 0 && req.httpVersionMajor === 1) return this.reject('transfer-encoding in an HTTP/1.0 request');
    this.hostname = normalizeHost(head.authority);
    const rpath = routingPath(target);
    if (rpath === null || INVALID_PATH.test(target)) return this.reject('invalid request path');
    this.hasBody = head.contentLength > 0 || head.chunked ||
      (head.contentLength === -1 && req.httpVersionMajor === 2 && (req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false);
    const entry = this.ctx.router.match(this.hostname, rpath);
    if (entry === null) return this.local(404);
    this.entry = entry;
    const action = this.ctx.actions[entry.index]!;
    if (action.maxBodySize > 0 && this.hasBody) {
      if (head.contentLength > action.maxBodySize) return this.refuse(413, `request body of ${head.contentLength} bytes, over max_body_size`);
      // Chunked (or HTTP/2 without content-length): counted while it streams, see requestBody().
      if (head.contentLength === -1) this.bodyLimit = action.maxBodySize;
    }
    if (action.ret !== null) {
      if (this.hasBody && !req.complete) this.res.shouldKeepAlive = false;
      this.status = action.ret.status;
      this.bytes = sendReturn(this.res, action.ret, this.requestId, this.method === 'HEAD');
      return;
    }
    if (action.upstream === null) {
      this.ctx.logs.error.error({ route: entry.label, request_id: this.requestId }, 'route names an unknown upstream');
      return this.local(502);
    }
    this.proxy(action.upstream, head.headers, target);
  }

  /** A 4xx/5xx of our own, before anything went upstream; `close`: end the HTTP/1.1 connection after it. */
  local(status: number, close = false): void {
    if (this.requestId === '') this.requestId = nextRequestId();
    this.phase = Phase.Done;
    this.status = status;
    this.bytes = sendError(this.res, status, this.requestId, this.method === 'HEAD', close || (this.hasBody && !this.req.complete));
  }

  reject(reason: string): void {
    // Nothing was sent upstream: undici 7 never sees headers it would choke on.
    this.refuse(400, reason);
  }

  /** A request refused before anything went upstream (400, 413, 431): answered, and the connection closed, as nginx does. */
  refuse(status: number, reason: string): void {
    this.ctx.logs.error.info({ client: this.client, method: this.method, path: this.req.url, status, reason }, status === 400 ? 'bad request' : 'request refused');
    this.hasBody = !this.req.complete;
    this.local(status, true);
  }

  /** A bug while serving this request: only this request fails. */
  internalError(err: unknown): void {
    this.ctx.logs.error.error({ err, request_id: this.requestId, route: this.entry?.label ?? null }, 'internal error');
    const abort = this.abortUpstream;
    this.abortUpstream = null;
    this.release();
    this.stopWatching();
    if (abort !== null) {
      this.phase = Phase.Done;
      try { abort(coded('BATON_INTERNAL', 'internal error')); } catch { /* already gone */ }
    }
    this.phase = Phase.Done;
    if (!this.res.headersSent && !this.res.destroyed) {
      try {
        this.status = 500;
        this.bytes = sendError(this.res, 500, this.requestId || nextRequestId(), this.method === 'HEAD', true);
        return;
      } catch { /* fall through */ }
    }
    this.cut = true;
    this.res.destroy();
  }

  // ---- upstream --------------------------------------------------------------------------------------------

  proxy(upstream: Upstream, headers: string[], path: string): void {
    this.upstream = upstream;
    this.headers = headers;
    this.path = path;
    this.idleLimit = upstream.config.idleTimeout;
    this.first = upstream.balancer.pick(Date.now());
    if (this.first === -1) return this.noLiveTarget(upstream);
    if (this.hasBody && awaitsContinue(this.req)) this.expect100 = true;
    this.dispatchTo(this.first);
  }

  /** Every target is down (health checks, or passive marks): 502 now rather than a wait on a dead target. */
  noLiveTarget(upstream: Upstream): void {
    const now = Date.now();
    if (now - upstream.noLiveLoggedAt >= 1000) { // at most one line a second per upstream, not one per request
      upstream.noLiveLoggedAt = now;
      this.ctx.logs.error.error({ upstream: upstream.config.name, route: this.entry?.label ?? null, request_id: this.requestId }, 'no live upstream target: every target is down');
    }
    this.local(502);
  }

  dispatchTo(index: number): void {
    const target = this.upstream!.targets[index]!;
    this.target = target;
    target.inflight++;
    this.counted = true;
    this.phase = Phase.Waiting;
    this.requestSent = false;
    this.abortUpstream = null;
    if (this.upstreamAt === 0) this.upstreamAt = performance.now();
    const opts = { path: this.path, method: this.method, headers: this.headers, body: this.hasBody ? this.requestBody() : null };
    if (this.fresh) {
      this.fresh = false;
      dispatchFresh(target, opts, this);
    } else {
      target.pool.dispatch(opts, this);
    }
  }

  /** Dispatch again once undici has finished failing the previous attempt (no re-entry into its error path). */
  redispatch(index: number): void {
    queueMicrotask(() => {
      if (this.phase !== Phase.Waiting) return;
      if (this.clientGone) {
        this.phase = Phase.Done;
        return;
      }
      try {
        this.dispatchTo(index);
      } catch (err) {
        this.internalError(err);
      }
    });
  }

  /** The client's body as undici will consume it. HTTP/1.1: the request itself (undici detaches its socket
   * before destroying it). HTTP/2: through a PassThrough, since destroying an Http2ServerRequest resets the stream.
   * A body without Content-Length under a `max_body_size` goes through a BodyLimit that counts it. */
  requestBody(): Readable {
    if (this.body === null) {
      if (this.req.httpVersionMajor === 2 || this.bodyLimit > 0) {
        const pass = new BodyLimit(this.bodyLimit);
        this.req.on('error', (err) => pass.destroy(err)).pipe(pass);
        this.body = pass;
      } else {
        this.body = this.req;
      }
    }
    return this.body;
  }

  /** Next target after a failure: the fallback order is computed only when first needed. */
  nextCandidate(now: number): number {
    if (this.fallback === null) this.fallback = nextTargets(this.upstream!, this.first, now);
    return this.fallbackPos < this.fallback.length ? this.fallback[this.fallbackPos++]! : -1;
  }

  release(): void {
    if (this.counted) {
      this.counted = false;
      this.target!.inflight--;
    }
  }

  stopWatching(): void {
    if (this.watching !== Watch.None) {
      this.watching = Watch.None;
      this.ctx.sweeper.unwatch(this);
    }
  }

  // ---- undici handler protocol -----------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone || this.phase === Phase.Done) {
      // The client left while this request waited for a connection.
      abort(CLIENT_GONE_ERROR);
      return;
    }
    this.abortUpstream = abort;
    if (this.expect100) {
      this.expect100 = false;
      this.res.writeContinue();
    }
    const bodyTimeout = uploadIdleLimit(this.ctx.limits.bodyTimeout, this.upstream!.config.idleTimeout);
    if (this.hasBody && bodyTimeout > 0 && !this.requestSent && this.watching === Watch.None) {
      this.idleLimit = bodyTimeout;
      this.watching = Watch.Upload;
      this.ctx.sweeper.watch(this, Date.now());
    }
  }

  onBodySent(): void {
    if (this.watching === Watch.Upload) this.idleSince = Date.now();
  }

  onRequestSent(): void {
    this.requestSent = true;
    if (this.watching === Watch.Upload) this.stopWatching();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 100 / 103: not relayed
    this.headersAt = performance.now();
    this.resumeUpstream = resume;
    const target = this.target!;
    if (target.fails !== 0 || target.downUntil !== 0) markUp(target);
    if (this.clientGone) return true;
    const res = this.res;
    try {
      const headers = buildResponseHeaders(rawHeaders, this.requestId);
      // The upstream answered before reading our whole upload: the client's rest cannot be consumed sensibly.
      if (this.hasBody && !this.requestSent) res.shouldKeepAlive = false;
      if (statusText && this.req.httpVersionMajor !== 2) res.writeHead(statusCode, statusText, headers);
      else res.writeHead(statusCode, headers);
    } catch (err) {
      throw coded(BAD_RESPONSE, `cannot relay the upstream response headers: ${(err as Error).message}`);
    }
    this.status = statusCode;
    this.phase = Phase.Streaming;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.clientGone) return true;
    const res = this.res;
    if (res.write(chunk)) return true;
    // The client reads slower than the upstream sends: hold the upstream until 'drain'.
    this.paused = true;
    if (!this.drainHooked) {
      this.drainHooked = true;
      res.on('drain', onResponseDrain);
    }
    const idle = this.upstream!.config.idleTimeout;
    if (idle > 0 && this.watching === Watch.None) {
      this.idleLimit = idle;
      this.watching = Watch.Download;
      this.ctx.sweeper.watch(this, Date.now());
    }
    return false;
  }

  onComplete(trailers: string[] | null): void {
    this.phase = Phase.Done;
    this.abortUpstream = null;
    this.release();
    this.stopWatching();
    if (!this.clientGone) {
      try {
        if (trailers && trailers.length > 0) relayTrailers(this.res, trailers);
        this.res.end();
      } catch (err) {
        this.internalError(err);
      }
    }
  }

  onError(err: Error): void {
    try {
      this.fail(err);
    } catch (bug) {
      this.internalError(bug);
    }
  }

  // ---- failures, idleness, the client leaving ----------------------------------------------------------------

  fail(err: Error): void {
    if (this.phase === Phase.Done) return; // already answered (e.g. internalError aborting the upstream)
    const wasWaiting = this.phase === Phase.Waiting;
    this.abortUpstream = null;
    this.release();
    this.stopWatching();
    const res = this.res;
    let code = errorCode(err);
    if (this.clientGone || (!this.cut && res.destroyed)) {
      this.clientGone = true;
      code = CLIENT_GONE;
    }
    const failure = classify(code);
    if (failure.kind !== 'client') recorder.upstreamFailure(this.entry === null ? -1 : this.entry.index, failure.kind, failure.code);
    const target = this.target!;
    if (wasWaiting && failure.kind !== 'client') {
      const now = Date.now();
      if (failure.kind === 'connect') {
        if (failure.markDown) this.markFailed(target, now);
        // Nothing reached the upstream; the body (if any) is untouched, so any method may move on.
        const next = this.nextCandidate(now);
        if (next !== -1 && (this.body === null || !this.body.readableDidRead)) {
          this.log('warn', failure, err, 'upstream connect failed, trying the next target');
          this.redispatch(next);
          return;
        }
      } else if (failure.kind === 'reset' && !this.retried && !this.hasBody && IDEMPOTENT.has(this.method)) {
        // Typically the keep-alive race (the upstream closed the idle connection we reused): one more try,
        // on a new connection (another idle one could be just as stale).
        this.retried = true;
        this.fresh = true;
        const next = this.nextCandidate(now);
        this.log('warn', failure, err, 'upstream connection reset before the response, retrying');
        this.redispatch(next === -1 ? target.index : next);
        return;
      } else if (failure.kind === 'internal') {
        replacePool(this.upstream!, target);
      } else if (failure.kind === 'timeout' || (failure.kind === 'reset' && this.retried)) {
        // No response headers in time, or a reset that the retry did not cure: counts for passive health.
        this.markFailed(target, now);
      }
    }
    this.phase = Phase.Done;
    if (this.clientGone) {
      this.log('info', failure, err, 'client closed the connection before the response was complete');
      return;
    }
    if (!res.headersSent) {
      this.log(failure.level, failure, err, 'upstream request failed');
      this.status = failure.status;
      this.bytes = sendError(res, failure.status, this.requestId, this.method === 'HEAD', this.hasBody && !this.req.complete);
    } else {
      // Headers are out: ending now would pass a truncated body off as complete. Cut the connection/stream.
      this.log(failure.level, failure, err, 'upstream failed after the response started, response cut');
      this.cut = true;
      // HTTP/2: RST_STREAM with INTERNAL_ERROR; a plain destroy() resets with NO_ERROR, which clients may
      // take for a normal end. HTTP/1: closing the connection is the only signal there is.
      const stream = (res as unknown as { stream?: { close(code: number): void } }).stream;
      if (stream) stream.close(NGHTTP2_INTERNAL_ERROR);
      else res.destroy();
    }
  }

  /** Passive health: one failure of `target`; say so when it takes the target out. */
  markFailed(target: Target, now: number): void {
    if (!markDown(target, now)) return;
    const c = target.upstream;
    this.ctx.logs.error.error({ upstream: c.name, target: target.address, max_fails: c.maxFails, fail_timeout: c.failTimeout }, 'upstream target taken out for fail_timeout after max_fails failures');
  }

  log(level: 'info' | 'warn' | 'error', failure: Failure, err: Error, msg: string): void {
    this.ctx.logs.error[level]({
      code: failure.code === 'UNKNOWN' || failure.code === 'HPE' ? errorCode(err) : failure.code,
      error: err.message,
      upstream: this.target?.address ?? null,
      route: this.entry?.label ?? null,
      request_id: this.requestId,
      method: this.method,
      path: this.req.url,
    }, msg);
  }

  onIdle(now: number): void {
    const kind = this.watching;
    this.watching = Watch.None;
    if (kind === Watch.Upload && this.req.readableLength > 0) {
      // Bytes are waiting: the upstream is the one not reading, and undici's response timeout covers it.
      this.watching = Watch.Upload;
      this.ctx.sweeper.watch(this, now);
      return;
    }
    const abort = this.abortUpstream;
    if (abort === null) return;
    abort(coded(CLIENT_IDLE, kind === Watch.Upload ? 'client stopped sending the request body' : 'client stopped reading the response'));
  }

  /** The HTTP/1.1 parser failed in the rest of this request's body (bad chunk): nothing more goes upstream,
   * the client gets a 400 (or its response is cut if one has started) and the connection closes. */
  badBody(code: string): boolean {
    if (this.phase !== Phase.Waiting && this.phase !== Phase.Streaming) return false; // answered already
    const err = coded(CLIENT_BAD_BODY, `malformed request body (${code})`);
    const abort = this.abortUpstream;
    if (abort !== null) {
      abort(err); // → fail(): 400, or a cut response
      return true;
    }
    // Not connected yet: answer now; onConnect then sees Done and aborts the dispatch.
    this.release();
    this.stopWatching();
    this.phase = Phase.Done;
    this.log('warn', classify(CLIENT_BAD_BODY), err, 'malformed request body');
    if (this.res.headersSent) {
      this.cut = true;
      this.res.destroy();
      return true;
    }
    this.status = 400;
    this.bytes = sendError(this.res, 400, this.requestId, this.method === 'HEAD', true);
    return true;
  }

  /** The response closed: finished, cut by us, or the client left. */
  closed(): void {
    // While the upstream exchange runs the response cannot be complete: onComplete ends it and moves to Done.
    // (An HTTP/2 response whose stream the client reset reports writableFinished === true: not a witness.)
    const running = this.phase === Phase.Waiting || this.phase === Phase.Streaming;
    if ((running || !this.res.writableFinished) && !this.cut) {
      this.clientGone = true;
      if (this.phase === Phase.Waiting || this.phase === Phase.Streaming) {
        const abort = this.abortUpstream;
        // Not connected yet → onConnect aborts it when undici gets there.
        if (abort !== null) abort(CLIENT_GONE_ERROR);
      }
    }
    this.stopWatching();
    // undici sets req.socket = null before destroying a request body it consumed (so that Node does not destroy
    // the connection with it). Give it back: listeners after us (drain accounting) expect req.socket.
    if (this.req.socket === null && this.socket !== null) (this.req as { socket: unknown }).socket = this.socket;
    this.recordMetrics();
    this.writeAccessLog();
  }

  /** The request's counts for /metrics (same status as the access log; a few array increments). */
  recordMetrics(): void {
    recorder.request(
      this.entry === null ? -1 : this.entry.index,
      this.clientGone ? 499 : this.status || this.res.statusCode,
      performance.now() - this.start,
      this.headersAt === 0 ? -1 : this.headersAt - this.upstreamAt,
    );
  }

  drained(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.watching === Watch.Download) this.stopWatching();
    const resume = this.resumeUpstream;
    if (resume !== null) resume();
  }

  writeAccessLog(): void {
    const access = this.ctx.logs.access;
    if (access === null) return;
    const req = this.req;
    logAccess(access, {
      client: this.client,
      method: this.method,
      host: this.hostname,
      path: req.url ?? '',
      status: this.clientGone ? 499 : this.status || this.res.statusCode,
      bytes: this.bytes,
      duration: ms(this.start, performance.now()),
      upstream: this.target === null ? null : this.target.origin,
      upstream_time: this.headersAt === 0 ? null : ms(this.upstreamAt, this.headersAt),
      request_id: this.requestId,
      protocol: protocolName(req.httpVersion),
    });
  }
}

/** Names that are never trailers worth relaying (RFC 9110 §6.5.1), and never legal in an HTTP/2 frame. */
const NOT_TRAILERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'host']);

/**
 * Upstream trailers (e.g. checksums, grpc-status) reach HTTP/2 clients as a trailing HEADERS frame, and HTTP/1.1
 * clients when the response is chunked (Node writes them only then). Invalid ones are dropped, not fatal.
 */
function relayTrailers(res: http.ServerResponse, raw: readonly (string | Buffer)[]): void {
  // Typed as strings, delivered by undici's HTTP/1 parser as raw Buffers.
  const text = (x: string | Buffer) => (typeof x === 'string' ? x : x.toString('latin1'));
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = text(raw[i]).toLowerCase();
    if (NOT_TRAILERS.has(name) || name.startsWith(':')) continue;
    const value = text(raw[i + 1]);
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch {
      continue;
    }
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  res.addTrailers(out);
}

function onResponseClose(this: Response): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  try {
    ex.closed();
  } catch (err) {
    ex.ctx.logs.error.error({ err }, 'error while closing a request');
  }
}

function onResponseDrain(this: Response): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  try {
    ex.drained();
  } catch (err) {
    ex.internalError(err);
  }
}

/** The parser refused the body of the request `res` answers (see client-error.ts); false if that request
 * is not in flight (not ours, or answered already): the caller then only closes the connection. */
export function requestBodyFailed(res: http.ServerResponse, code: string): boolean {
  const ex = (res as Response)[kExchange];
  if (ex === undefined) return false;
  try {
    if (!ex.badBody(code)) return false;
  } catch (err) {
    ex.internalError(err);
  }
  res.shouldKeepAlive = false;
  return true;
}

/** Serve one request; never throws. */
export function serve(ctx: HandlerContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  let ex: Exchange | null = null;
  try {
    ex = new Exchange(ctx, req, res);
    ex.run();
  } catch (err) {
    if (ex !== null) ex.internalError(err);
    else {
      ctx.logs.error.error({ err }, 'internal error');
      try {
        if (!res.headersSent) sendError(res, 500, nextRequestId(), req.method === 'HEAD', true);
        else res.destroy();
      } catch {
        res.destroy();
      }
    }
  }
}
