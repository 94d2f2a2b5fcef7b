/**
 * @module One request on an HTTP/2 upstream connection (h2-pool.ts): its stream, its body going up, its response
 * coming down, in undici's dispatch handler protocol; and the connection state the pool keeps per session.
 */
import type http2 from 'node:http2';
import { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } from '../h2-codes.js';
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/types.js';
import { H2_REFUSED, H2_RESET, coded } from '../errors.js';


/** Tries again after refused streams, per request: a target refusing every new stream is answered for (502). */
export const MAX_REFUSALS = 5;
/** The streamed request body kept for a try again after a refusal; a longer one cannot be sent twice. */
const REPLAY_LIMIT = 64 * 1024;

/** Streams per connection until the target's SETTINGS say otherwise (nghttp2's and Node's default is 100). */
export const INITIAL_STREAMS = 100;
/** Request headers that are connection-specific, hence illegal in HTTP/2 (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);
/** gRPC's trailers, which a trailers-only response carries in its one HEADERS frame. */
const GRPC_TRAILERS: ReadonlySet<string> = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin']);

/** undici calls onRequestSent too (its types leave it out). */
type Handler = Dispatcher.DispatchHandler & { onRequestSent?(): void };
/**
 * `replay`: a new copy of a body that can be read again from its start (a buffered one in a file), for a request
 * sent again after a refusal; `retryUntil`: when (performance.now() ms) the retry budget runs out, after which a
 * refusal goes to the attempt instead of being sent again. The attempt gives both; undici's pools ignore them.
 */
export type Options = Dispatcher.DispatchOptions & { replay?: () => Buffer | Readable; retryUntil?: number };

/** What an exchange needs of its pool. */
export interface ExchangePool {
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  readonly upstream: UpstreamConfig;
  /** A stream of `conn` ended (or never opened): its slot is free. */
  released(conn: Conn): void;
  /** Start `ex` again on a connection that is not closing (its stream was refused unprocessed). */
  again(ex: Exchange): void;
}

/** One connection (session) and the streams it carries or has promised to carry. */
export class Conn {
  session: http2.ClientHttp2Session | null = null;
  /** Streams open or reserved by requests waiting for the connection. */
  streams = 0;
  /** Streams given to the connection since it opened (refused ones included); which of them was the last first try. */
  total = 0;
  lastFirstTry = 0;
  maxStreams = INITIAL_STREAMS;
  /** GOAWAY received, closing, or closed: no new streams. */
  closing = false;
  /** The last stream id the target's GOAWAY says it may have processed (streams above it were not). */
  goawayLast = 2 ** 31;
  /** Requests waiting for the connection to be ready. */
  waiting: Exchange[] = [];
  idleTimer: NodeJS.Timeout | null = null;
  /** The session's or socket's error, for the streams it takes down. */
  error: Error | null = null;
}

/** One request on the pool: its stream, its body going up, its response coming down. */
export class Exchange {
  readonly #pool: ExchangePool;
  readonly #opts: Options;
  readonly #handler: Handler;
  #conn: Conn | null = null;
  #stream: http2.ClientHttp2Stream | null = null;
  #body: Readable | null = null;
  #trailers: string[] | null = null;
  #responded = false;
  #done = false;
  /** Refused streams so far (REFUSED_STREAM, or past a GOAWAY): each was tried again on another connection. */
  #refusals = 0;
  /** A streamed body's chunks written so far, while they fit in REPLAY_LIMIT (null once they do not). */
  #written: Buffer[] | null = [];
  #writtenBytes = 0;
  /** A streamed body's end was read (and written). */
  #bodyEnded = false;
  /** The body this try sends: the request's, or a new copy from `replay` after a refusal. */
  #source: unknown;
  /** This try sends first the chunks `#written` kept of the same streamed body. */
  #resend = false;

  constructor(pool: ExchangePool, opts: Options, handler: Handler) {
    this.#pool = pool;
    this.#opts = opts;
    this.#handler = handler;
    this.#source = opts.body;
  }

  /** The connection is ready: open the stream (unless the request was given up while it waited). */
  start(conn: Conn): void {
    this.#conn = conn;
    // The handler hears of one connection, whatever the tries again after refusals.
    if (this.#refusals === 0) {
      try {
        this.#handler.onConnect!((err?: Error) => this.#abort(err));
      } catch (err) {
        this.fail(err as Error);
        return;
      }
    }
    if (this.#done) {
      // Given up while it waited for the connection of a try again (the first: fail() gave the slot back).
      this.#giveBack();
      return;
    }
    const session = conn.session!;
    const opts = this.#opts;
    let stream: http2.ClientHttp2Stream;
    try {
      if (session.closed || session.destroyed) throw coded(H2_REFUSED, 'the connection closed before the request was sent');
      const body = this.#source;
      stream = session.request(this.#headers(), { endStream: body === null || body === undefined });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === H2_REFUSED || e.code === 'ERR_HTTP2_GOAWAY_SESSION' || e.code === 'ERR_HTTP2_INVALID_SESSION') {
        // Not picked again for the try again below ('close' may not have come yet).
        conn.closing = true;
        this.#giveBack();
        this.#refused(coded(H2_REFUSED, e.message));
      } else this.fail(coded('UND_ERR_INVALID_ARG', e.message));
      return;
    }
    this.#stream = stream;
    this.#listen(stream);
    const up = this.#pool.upstream;
    const headersTimeout = opts.headersTimeout ?? up.responseTimeout;
    // Without a callback: each callback given to setTimeout is one more 'timeout' listener (Node adds it with
    // `once`), and a long download paused and resumed by a slow client would pile them up. Ours is in #listen.
    if (headersTimeout > 0) stream.setTimeout(headersTimeout);
    this.#sendBody(stream);
  }

  /**
   * Our listeners on the stream, and, once it has closed, nothing of ours. Node's young-generation collector
   * never frees an http2 stream: its native handle keeps it alive until a full collection (measured: every
   * ClientHttp2Stream of a run was finalized after a mark-compact, none after a scavenge). So everything a
   * closed stream still reaches (listeners, this exchange, the attempt's handler, the client's request and
   * response) is copied and promoted with it, and each request cost a worker 6 ms scavenges and a full
   * collection every 0.4 s under load.
   */
  #listen(stream: http2.ClientHttp2Stream): void {
    const emitter = stream as EventEmitter;
    const listeners: [string, Listener][] = [
      ['response', (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => this.#response(headers, flags)],
      ['data', (chunk: Buffer) => this.#data(chunk)],
      ['trailers', (headers: http2.IncomingHttpHeaders) => { this.#trailers = flatten(headers, false); }],
      ['end', () => this.#end()],
      ['error', (e: Error) => { this.#streamError = e; }],
      ['timeout', () => this.#timedOut()],
      ['close', () => {
        for (const [event, fn] of listeners) emitter.off(event, fn);
        // Node emits nothing after 'close'; should that change, an 'error' must still find a listener.
        stream.on('error', ignore);
        this.#closed();
      }],
    ];
    for (const [event, fn] of listeners) emitter.on(event, fn);
  }

  #streamError: Error | null = null;

  #headers(): http2.OutgoingHttpHeaders {
    const opts = this.#opts;
    const out: http2.OutgoingHttpHeaders = { ':method': opts.method, ':path': opts.path, ':scheme': this.#pool.scheme };
    let authority = this.#pool.authority;
    const raw = (opts.headers ?? []) as string[];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      if (CONNECTION_SPECIFIC.has(name)) {
        if (name === 'host') authority = value;
        continue;
      }
      // The only `te` HTTP/2 allows, and the one gRPC needs.
      if (name === 'te' && value.toLowerCase() !== 'trailers') continue;
      const prev = out[name];
      if (prev === undefined) out[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else out[name] = [prev as string, value];
    }
    out[':authority'] = authority;
    return out;
  }

  #sendBody(stream: http2.ClientHttp2Stream): void {
    const body = this.#source;
    const handler = this.#handler;
    if (body === null || body === undefined) {
      handler.onRequestSent?.();
      return;
    }
    if (isBytes(body)) {
      const buf = body as Buffer;
      stream.end(buf, (err?: Error | null) => {
        if (err) return; // the stream's 'close' reports it
        handler.onBodySent?.(buf.length, buf.length);
        handler.onRequestSent?.();
      });
      return;
    }
    const readable = body as Readable;
    this.#body = readable;
    this.#detachBody(); // the error listener of the wait for this try's connection, if any
    // A try again after a refusal, with the same streamed body: what the refused stream took first.
    if (this.#resend) {
      for (const chunk of this.#written!) stream.write(chunk);
      if (this.#bodyEnded) {
        stream.end();
        return;
      }
    }
    const onData = (chunk: Buffer) => {
      const written = this.#written;
      if (written !== null) {
        if (this.#writtenBytes + chunk.length > REPLAY_LIMIT) this.#written = null;
        else written.push(chunk);
      }
      this.#writtenBytes += chunk.length;
      handler.onBodySent?.(chunk.length, this.#writtenBytes);
      if (!stream.write(chunk)) readable.pause();
    };
    const onEnd = () => {
      this.#bodyEnded = true;
      this.#detachBody();
      stream.end();
      handler.onRequestSent?.();
    };
    const onError = (err: Error) => this.#abort(err);
    readable.on('data', onData);
    readable.once('end', onEnd);
    readable.once('error', onError);
    const onDrain = () => readable.resume();
    stream.on('drain', onDrain);
    this.#detach = () => {
      readable.off('data', onData);
      readable.off('end', onEnd);
      readable.off('error', onError);
      stream.off('drain', onDrain);
    };
    if (readable.readableEnded) onEnd();
    else if (this.#resend) readable.resume();
  }

  #detach: (() => void) | null = null;

  #detachBody(): void {
    const detach = this.#detach;
    this.#detach = null;
    detach?.();
  }

  #response(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    if (this.#done) return;
    this.#responded = true;
    // Answered: never refused now, so nothing to send again (a long gRPC call would hold it to its end).
    this.#written = null;
    const stream = this.#stream!;
    const status = Number(headers[':status']);
    const up = this.#pool.upstream;
    stream.setTimeout(up.idleTimeout);
    // A trailers-only response (gRPC errors) carries its trailers in the one HEADERS frame: relay them as
    // trailers, or an HTTP/2 client would get HEADERS then an empty DATA frame and no status.
    const trailersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0 && headers['grpc-status'] !== undefined;
    const raw = flatten(headers, trailersOnly);
    if (trailersOnly) this.#trailers = grpcTrailers(headers);
    const resume = () => {
      if (this.#done) return;
      stream.setTimeout(up.idleTimeout);
      stream.resume();
    };
    if (this.#handler.onHeaders!(status, raw as unknown as Buffer[], resume, '') === false) {
      // The client's buffer is full: its own idle watch (relay.ts) bounds the wait, not ours.
      stream.setTimeout(0);
      stream.pause();
    }
  }

  #data(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#handler.onData!(chunk) === false) {
      this.#stream!.setTimeout(0);
      this.#stream!.pause();
    }
  }

  #end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#detachBody();
    const stream = this.#stream!;
    stream.setTimeout(0);
    // The response is complete; a request body still streaming is not wanted any more.
    if (!stream.writableEnded) stream.close(NGHTTP2_NO_ERROR);
    this.#handler.onComplete!(this.#trailers);
  }

  #closed(): void {
    const conn = this.#giveBack();
    if (this.#done) return;
    const stream = this.#stream!;
    const rst = stream.rstCode ?? 0;
    // Past the last stream of a GOAWAY: unprocessed too, also when the GOAWAY carried an error and Node tore the
    // connection down with every stream on it (nghttp2 would have refused these).
    const id = stream.id;
    const pastGoaway = conn !== null && id !== undefined && id > conn.goawayLast;
    if ((rst === NGHTTP2_REFUSED_STREAM || pastGoaway) && !this.#responded) {
      this.#refused(coded(H2_REFUSED, rst === NGHTTP2_REFUSED_STREAM ? 'the upstream refused the stream (REFUSED_STREAM): not processed' : 'the stream was past the last one of the upstream\'s GOAWAY: not processed'));
      return;
    }
    const cause = this.#streamError ?? conn?.error ?? null;
    const causeCode = (cause as { code?: string } | null)?.code;
    if (causeCode !== undefined && /^E[A-Z]+$/.test(causeCode)) this.fail(cause!);
    else this.fail(coded(H2_RESET, rst !== 0 ? `the upstream reset the stream (HTTP/2 error code ${rst})` : `the upstream connection closed the stream${cause !== null ? `: ${cause.message}` : ''}`));
  }

  /**
   * The stream was refused unprocessed, most often by a target that closes each connection after so many requests
   * (nginx's keepalive_requests, 1000 by default): its GOAWAY refuses the streams already on their way. Whatever
   * the method, the request goes again on a connection that is not closing, its body (or up to REPLAY_LIMIT of a
   * streamed one) sent again from the start; after MAX_REFUSALS, or with more of a streamed body gone than was
   * kept, or once the retry budget (`retry.timeout`) is spent, the attempt hears of the refusal (another target,
   * or 502).
   */
  #refused(err: Error): void {
    const body = this.#source;
    const streamed = body !== null && body !== undefined && !isBytes(body);
    const replay = streamed ? this.#opts.replay : undefined;
    const until = this.#opts.retryUntil;
    if (this.#done || this.#refusals >= MAX_REFUSALS || (streamed && replay === undefined && this.#written === null) || (until !== undefined && performance.now() >= until)) {
      this.fail(err);
      return;
    }
    this.#refusals++;
    this.#detachBody();
    this.#stream = null;
    this.#trailers = null;
    this.#streamError = null;
    if (replay !== undefined) {
      // A buffered body: a new copy from its start (taken before the old one is let go, which keeps its file open).
      this.#source = replay();
      (body as Readable).destroy();
      this.#written = [];
      this.#writtenBytes = 0;
      this.#bodyEnded = false;
      this.#resend = false;
    } else this.#resend = streamed;
    if (streamed && replay === undefined && !this.#bodyEnded) {
      // Paused, or what it reads until the next stream is ready would go nowhere; and an error meanwhile (the
      // client gone, a body over max_body_size) must find a listener.
      const readable = body as Readable;
      readable.pause();
      const onError = (e: Error) => this.#abort(e);
      readable.once('error', onError);
      this.#detach = () => readable.off('error', onError);
    }
    this.#pool.again(this);
  }

  #timedOut(): void {
    this.#abort(this.#responded ? coded('UND_ERR_BODY_TIMEOUT', 'upstream body timeout') : coded('UND_ERR_HEADERS_TIMEOUT', 'upstream headers timeout'));
  }

  /** Given up by the attempt (or a timeout): cancel the stream, then report. */
  #abort(err?: Error): void {
    if (this.#done) return;
    this.#detachBody();
    const stream = this.#stream;
    this.fail(err ?? coded('UND_ERR_ABORTED', 'request aborted'));
    if (stream !== null && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  }

  /** Report the failure once; a stream that never opened gives its reserved slot back. */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#detachBody();
    if (this.#stream === null) this.#giveBack();
    this.#handler.onError!(err);
  }

  /** The stream slot this exchange holds on its connection, given back (once): that connection, or null. */
  #giveBack(): Conn | null {
    const conn = this.#conn;
    if (conn !== null) {
      this.#conn = null;
      this.#pool.released(conn);
    }
    return conn;
  }
}

/** A stream listener, whatever its event's arguments (typed where it is written). */
type Listener = Parameters<EventEmitter['on']>[1];

/** A body given whole (written with one `end`), not as a stream. */
function isBytes(body: unknown): body is Buffer | string | Uint8Array {
  return Buffer.isBuffer(body) || typeof body === 'string' || body instanceof Uint8Array;
}

/** The 'error' listener a closed stream keeps: it reaches nothing. */
function ignore(): void {}

/** Node's header object as a flat list (pseudo-headers dropped; `skipGrpcTrailers` leaves gRPC's trailers out). */
function flatten(headers: http2.IncomingHttpHeaders, skipGrpcTrailers: boolean): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* : */ || (skipGrpcTrailers && GRPC_TRAILERS.has(name))) continue;
    const v = headers[name];
    if (Array.isArray(v)) for (const x of v) out.push(name, x);
    else if (v !== undefined) out.push(name, String(v));
  }
  return out;
}

function grpcTrailers(headers: http2.IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name of GRPC_TRAILERS) {
    const v = headers[name];
    if (v !== undefined) out.push(name, String(v));
  }
  return out;
}
