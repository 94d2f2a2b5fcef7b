/**
 * @module One client request from arrival to its access-log line, through named phases (Pingora's ProxyHttp is
 * the model): admission (admission.ts) → a local answer (respond.ts) or the upstream attempt with failover
 * (attempt.ts) → the response relay (relay.ts) → logging and metrics (request-log.ts). The Exchange holds only
 * what the phases share: the request and its response, its admission, and its outcome (status, bytes, whether
 * the client left or we cut the response). One object per request, no closures: the response's 'close'
 * listener is a module function that finds its Exchange through a symbol.
 */
import type http from 'node:http';
import { Admission, admit, Arrival, type Gate } from './admission.js';
import { proxy, type UpstreamAttempt } from './attempt.js';
import { CLIENT_BAD_BODY, CLIENT_GONE, INTERNAL, classify, coded } from './errors.js';
import { nextRequestId } from './headers.js';
import { peerAddress } from './client-address.js';
import type { IdleSweeper } from './idle.js';
import type { Relayed } from './relay.js';
import type { RequestFacts, RequestLog } from './request-log.js';
import { sendError, sendReturn } from './respond.js';
import { isGrpc, sendGrpcError } from './grpc.js';
import { protocolName, ms } from './access-log.js';
import type { Limited, RateLimiter } from './rate-limit.js';

/** Everything the request path reads, compiled once per config snapshot (handler.ts). */
export interface HandlerContext extends Gate {
  readonly log: RequestLog;
  readonly sweeper: IdleSweeper;
  /** Each route's rate limit (indexed like routes), or null when no route has one. */
  readonly rateLimiters: readonly (RateLimiter | null)[] | null;
}

const kExchange = Symbol('baton.exchange');
type Response = http.ServerResponse & { [kExchange]?: Exchange };

const CLIENT_GONE_ERROR = coded(CLIENT_GONE, 'client closed the connection');

/** The client of this response is gone already: an HTTP/2 stream reset, or a closed HTTP/1 connection. */
function responseGone(res: http.ServerResponse): boolean {
  const stream = (res as { stream?: { destroyed: boolean } }).stream;
  return stream !== undefined ? stream.destroyed : res.destroyed;
}

export class Exchange extends Admission implements Relayed, RequestFacts, Limited {
  readonly ctx: HandlerContext;
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly start = performance.now();
  readonly method: string;
  /** req.socket at arrival (see `closed`). */
  readonly #socket: http.IncomingMessage['socket'] | null;
  attempt: UpstreamAttempt | null = null;
  status = 0;
  bytes = 0;
  cut = false;
  clientGone = false;

  constructor(ctx: HandlerContext, req: http.IncomingMessage, res: http.ServerResponse, arrival: Arrival) {
    super();
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.method = req.method ?? '';
    // Read now: the pool detaches req.socket when it destroys a consumed request body (h1-conn.ts discardBody).
    this.#socket = req.socket ?? null;
    (res as Response)[kExchange] = this;
    res.on('close', onResponseClose);
    admit(ctx, req, arrival, peerAddress(this.#socket), this);
  }

  get url(): string {
    return this.req.url ?? '';
  }

  get route(): string | null {
    return this.entry?.label ?? null;
  }

  get routeIndex(): number {
    return this.entry?.index ?? -1;
  }

  run(): void {
    if (this.refusal !== 0) return this.#refuse();
    if (this.entry === null) return this.answer(404, false);
    const limiter = this.ctx.rateLimiters?.[this.entry.index] ?? null;
    if (limiter !== null) return limiter.admit(this);
    this.proceed();
  }

  /** Admitted, and within its route's rate limit: answer locally or go upstream. */
  proceed(): void {
    const action = this.action!;
    if (action.ret !== null) {
      if (this.hasBody && !this.req.complete) this.res.shouldKeepAlive = false;
      this.status = action.ret.status;
      this.bytes = sendReturn(this.res, action.ret, this, this.method === 'HEAD');
      return;
    }
    const upstream = action.upstream;
    if (upstream === null) {
      this.ctx.log.error.error({ route: this.route, request_id: this.requestId }, 'route names an unknown upstream');
      return this.answer(502, false);
    }
    proxy(this, upstream);
  }

  /** Over the route's rate limit (rate-limit.ts): 429, the connection kept. */
  limited(retryAfter: number): void {
    this.res.setHeader('retry-after', String(retryAfter));
    this.answer(429, false);
  }

  /** A 4xx/5xx of our own; `close`: end the HTTP/1.1 connection after it (a body not read to its end always does). */
  answer(status: number, close: boolean): void {
    if (this.requestId === '') this.requestId = nextRequestId();
    this.status = status;
    // A gRPC client reads its status from trailers: a trailers-only answer (the log keeps the HTTP status).
    if (this.req.httpVersionMajor === 2 && isGrpc(this.req.rawHeaders)) return sendGrpcError(this.res, status, this.requestId);
    this.bytes = sendError(this.res, status, this.requestId, this.method === 'HEAD', close || (this.hasBody && !this.req.complete));
  }

  /** Refused by admission, before anything went upstream: answered, and the connection closed, as nginx does. */
  #refuse(): void {
    if (this.requestId === '') this.requestId = nextRequestId();
    this.ctx.log.refused(this.refusal, this.reason, this.client, this);
    // A 403 (allow/deny) says nothing about the connection, which stays open, as nginx keeps it.
    this.answer(this.refusal, this.refusal !== 403);
  }

  /** The client left already (checked before dispatch and when the pool asks to start). */
  clientLeft(): boolean {
    return this.clientGone || responseGone(this.res);
  }

  /** A failure arrived: was it the client leaving? (A destroyed response we did not cut means it was.) */
  noticeGone(): boolean {
    if (!this.clientGone && !this.cut && this.res.destroyed) this.clientGone = true;
    return this.clientGone;
  }

  /** A bug while serving this request: only this request fails. */
  internalError(err: unknown): void {
    this.ctx.log.error.error({ err, request_id: this.requestId, route: this.route }, 'internal error');
    this.attempt?.stop(coded(INTERNAL, 'internal error'));
    const res = this.res;
    if (!res.headersSent && !res.destroyed) {
      try {
        this.answer(500, true);
        return;
      } catch { /* fall through */ }
    }
    this.cut = true;
    res.destroy();
  }

  /** The HTTP/1.1 parser failed in the rest of this request's body (bad chunk): nothing more goes upstream, the
   * client gets a 400 (or its response is cut if one has started) and the connection closes. */
  badBody(code: string): boolean {
    const attempt = this.attempt;
    if (attempt === null || !attempt.running) return false; // answered already
    const err = coded(CLIENT_BAD_BODY, `malformed request body (${code})`);
    if (attempt.connected) {
      attempt.cancel(err); // → onError: a 400, or a cut response
      return true;
    }
    // Not connected yet: answer now; onConnect then finds the attempt stopped and aborts the dispatch.
    attempt.stop(err);
    this.ctx.log.failure('warn', classify(CLIENT_BAD_BODY), err, { upstream: attempt.upstream.config.name, target: attempt.target.address }, this, 'malformed request body');
    if (this.res.headersSent) attempt.cutResponse();
    else this.answer(400, true);
    return true;
  }

  /** The response closed: finished, cut by us, or the client left. */
  closed(): void {
    const attempt = this.attempt;
    // While the upstream attempt runs the response cannot be complete (an HTTP/2 response whose stream the
    // client reset reports writableFinished === true: not a witness).
    const running = attempt !== null && attempt.running;
    if ((running || !this.res.writableFinished) && !this.cut) {
      this.clientGone = true;
      // Not connected yet → onConnect aborts it when the pool gets there.
      if (running) attempt.cancel(CLIENT_GONE_ERROR);
    }
    attempt?.unwatch();
    // The pool sets req.socket = null before destroying a request body it consumed (so that Node does not destroy
    // the connection with it). Give it back: listeners after us (drain accounting) expect req.socket.
    if (this.req.socket === null && this.#socket !== null) (this.req as { socket: unknown }).socket = this.#socket;
    this.#finish();
  }

  /** The last phase: counts and the access-log line (the same status in both). */
  #finish(): void {
    const log = this.ctx.log;
    const attempt = this.attempt;
    const status = this.clientGone ? 499 : this.status || this.res.statusCode;
    const upstreamMs = attempt === null || attempt.headersAt === 0 ? -1 : attempt.headersAt - attempt.dispatchedAt;
    const now = performance.now();
    log.count(this.routeIndex, status, now - this.start, upstreamMs);
    if (this.clientGone) {
      log.abandoned();
      // Neither answered nor sent upstream (typically an HTTP/2 stream reset at once): counted and summed up
      // in the error log, no access-log line each.
      if (!this.res.headersSent && (attempt === null || attempt.dispatchedAt === 0)) return;
    }
    if (!log.accessOn) return;
    log.access({
      client: this.client,
      method: this.method,
      host: this.hostname,
      path: this.url,
      status,
      bytes: this.bytes,
      duration: ms(this.start, now),
      upstream: attempt === null ? null : attempt.upstream.config.name,
      target: attempt === null || attempt.dispatchedAt === 0 ? null : attempt.target.address,
      upstream_time: upstreamMs < 0 ? null : ms(attempt!.dispatchedAt, attempt!.headersAt),
      request_id: this.requestId,
      protocol: protocolName(this.req.httpVersion),
    });
  }
}

function onResponseClose(this: Response): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  try {
    ex.closed();
  } catch (err) {
    ex.ctx.log.error.error({ err }, 'error while closing a request');
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

/** Serve one request (`arrival`: Detached for an upgrade request answered as plain HTTP); never throws. */
export function serve(ctx: HandlerContext, req: http.IncomingMessage, res: http.ServerResponse, arrival = Arrival.Parsed): void {
  // A client gone before we even start (an HTTP/2 stream reset in the same read as its HEADERS): counted
  // and summed up, nothing else. This is what keeps the rapid-reset attack cheap.
  if (responseGone(res)) {
    ctx.log.count(-1, 499, 0, -1);
    ctx.log.abandoned();
    return;
  }
  let ex: Exchange | null = null;
  try {
    ex = new Exchange(ctx, req, res, arrival);
    ex.run();
  } catch (err) {
    if (ex !== null) ex.internalError(err);
    else {
      ctx.log.error.error({ err }, 'internal error');
      try {
        if (!res.headersSent) sendError(res, 500, nextRequestId(), req.method === 'HEAD', true);
        else res.destroy();
      } catch {
        res.destroy();
      }
    }
  }
}
