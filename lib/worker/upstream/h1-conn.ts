/**
 * @module One HTTP/1.1 connection to a target (h1-pool.ts): the request written in one write (head, and a
 * buffered body with it), the response read straight off the socket's buffers into the upstream attempt's
 * handler (undici's dispatch handler protocol: onConnect, onHeaders, onData, onComplete, onError, onBodySent,
 * onRequestSent). One request at a time (no pipelining), as the undici Pool did with `pipelining: 1`.
 *
 * Why not undici's Client: for a small keep-alive response it cost about 8 µs of CPU per request here, a quarter
 * of a worker's whole budget (one worker, wrk -c64, CPU from /proc: a bare proxy 32 µs per request with it, 24
 * with a minimal client of its own): a request object validated again, llhttp in WebAssembly with a callback and a
 * Buffer per header field. baton has validated what it sends.
 *
 * Timers are per connection, made once and re-armed with `refresh()`: a timer that fires while it is not armed
 * does nothing. An idle connection is unref'd (it never keeps a worker alive) and re-checked before reuse.
 */
import http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { coded } from '../errors.js';
import { connectH1, type TargetEndpoint } from './connect.js';
import { Framing, MAX_CHUNK_LINE, MAX_HEAD, parseChunkSize, parseHead, parseTrailers, type ResponseHead } from './h1-parse.js';

/** undici calls onRequestSent too (its types leave it out). */
export type Handler = Dispatcher.DispatchHandler & { onRequestSent?(): void };
export type Options = Dispatcher.DispatchOptions;

/** What a connection needs of its pool. */
export interface ConnOwner {
  /** `host` sent when the request has none. */
  readonly hostHeader: string;
  readonly keepAlive: number;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly connectTimeout: number;
  /** The TLS session to resume on the next connection (https targets), kept from the last handshake. */
  tlsSession: Buffer | null;
  /** The connection finished a request and may take another (false: it is closing). */
  released(conn: H1Conn, reusable: boolean): void;
  /** The socket closed (or never opened). */
  gone(conn: H1Conn): void;
  /** A request the connection gives back before writing any of it: to go on another connection. */
  retry(x: H1Request): void;
}

/** undici subtracts this from an upstream's `Keep-Alive: timeout=` hint: the upstream's clock runs first. */
const KEEP_ALIVE_MARGIN = 2000;
/** Trailers, like a head, are bounded. */
const MAX_TRAILERS = MAX_HEAD;
const CRLF2 = '\r\n\r\n';
const EMPTY: string[] = [];
const NOOP = (): void => {};

const enum Read {
  /** No request, or a request written and its response head not (completely) here. */
  Head,
  Length,
  ChunkSize,
  ChunkData,
  /** The CRLF after a chunk's data: bytes of it seen so far in `crlf`. */
  ChunkEnd,
  Trailers,
  UntilClose,
}

/**
 * The body as a connection writes it: a Buffer, a stream, or null. The proxy passes Buffers and streams; the rest of
 * what undici's dispatch takes (a string, a Uint8Array, an iterable) is converted, and anything else fails the
 * request instead of throwing from a socket event.
 */
function requestBody(body: unknown): Buffer | Readable | null | Error {
  if (body === null || body === undefined) return null;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Readable) return body;
  const it = body as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  if (typeof it[Symbol.asyncIterator] === 'function' || typeof it[Symbol.iterator] === 'function') return Readable.from(it as AsyncIterable<unknown>, { objectMode: false });
  return coded('UND_ERR_INVALID_ARG', 'the request body is not a Buffer, a string, a stream or an iterable');
}

/** An LF without its CR in `buf` from `from` (an LF right at `from` has none: the head starts there). */
function hasBareLf(buf: Buffer, from: number): boolean {
  for (let i = buf.indexOf(10, from); i !== -1; i = buf.indexOf(10, i + 1)) if (i === from || buf[i - 1] !== 13) return true;
  return false;
}

/** Methods whose request carries a body by definition: no body is sent as `content-length: 0` (as undici does). */
function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'QUERY' || method === 'PROPFIND' || method === 'PROPPATCH';
}

/** One request on a connection, from onConnect to onComplete or onError. */
export class H1Request {
  readonly opts: Options;
  readonly handler: Handler;
  conn: H1Conn | null = null;
  done = false;
  /** Some of the request reached the socket: the connection cannot be reused if it stops now. */
  written = false;
  /** The whole request is written. */
  sent = false;
  paused = false;
  /** Body bytes written, against a declared length (-1: chunked). */
  bodyBytes = 0;
  declared = -1;
  /** Detaches (and with `discard`, destroys) a streamed body; set while one is being written. */
  bodyFinish: ((err: Error | null, discard: boolean) => void) | null = null;
  /** Given to onConnect: stops this request, and only this one. */
  readonly abort = (err?: Error): void => {
    if (!this.done) this.conn?.failRequest(this, err ?? coded('UND_ERR_ABORTED', 'request aborted'));
  };
  /** Given to onHeaders: resumes this response, and only this one (a late call for an earlier one does nothing). */
  readonly resume = (): void => {
    if (!this.done) this.conn?.resumeRead(this);
  };

  constructor(opts: Options, handler: Handler) {
    this.opts = opts;
    this.handler = handler;
  }

  /** Fails: onError, once (a connect error, a closed pool, or anything that ended its connection). */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    try {
      this.handler.onError!(err);
    } catch {
      /* the attempt catches its own bugs (attempt.ts onError) */
    }
  }
}

export class H1Conn {
  readonly #owner: ConnOwner;
  readonly socket: net.Socket;
  #x: H1Request | null = null;
  #connected = false;
  #closed = false;
  #error: Error | null = null;
  /** The socket is unref'd (idle). */
  #unrefd = false;
  /** Something makes the connection unusable after the current response (close, extra bytes, early answer). */
  #noReuse = false;
  /** A response completed on it: a request given to it later waits one event-loop turn first (`start`). */
  #used = false;
  /** That turn, while it runs: the request is the connection's, nothing of it is written yet. */
  #check: NodeJS.Immediate | null = null;

  // -- response reading
  #read = Read.Head;
  /** Bytes of an incomplete head (or trailer block, or chunk-size line) from earlier reads. */
  #partial: Buffer | null = null;
  #remaining = 0;
  #crlf = 0;
  /** Bytes read while the handler had paused the response. */
  #pending: Buffer | null = null;
  #parsing = false;

  // -- timers, made once per connection
  #headersTimer: NodeJS.Timeout | null = null;
  #headersArmed = false;
  #bodyTimer: NodeJS.Timeout | null = null;
  #bodyArmed = false;
  #idleTimer: NodeJS.Timeout | null = null;
  #idleMs = 0;
  #idleArmed = false;
  #connectTimer: NodeJS.Timeout | null = null;

  constructor(owner: ConnOwner, endpoint: TargetEndpoint) {
    this.#owner = owner;
    const { socket, ready } = connectH1(endpoint, owner.tlsSession, (s) => { owner.tlsSession = s; });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on(ready, () => this.#onConnect());
    socket.on('data', (buf: Buffer) => this.#onData(buf));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err: Error) => this.#onError(err));
    socket.on('close', () => this.#onClose());
    socket.on('drain', () => this.#onDrain());
    const ms = owner.connectTimeout;
    if (ms > 0) {
      this.#connectTimer = setTimeout(() => this.#destroy(coded('UND_ERR_CONNECT_TIMEOUT', `connect timeout after ${ms} ms`)), ms);
      this.#connectTimer.unref();
    }
  }

  /** Open and not closing: may be given a request. */
  get usable(): boolean {
    return !this.#closed && !this.socket.destroyed && !this.socket.readableEnded && this.#x === null;
  }

  /**
   * Take a request: once connected for a new connection; after one event-loop turn for one that served before.
   * Bytes, an end or a reset the upstream sent while the connection sat idle may be waiting in this very turn's
   * poll results, behind the event that brought the request: written at once, the request would take them for its
   * response (a stray response given to the wrong client), or fail on the end. The turn lets them arrive first;
   * then the request goes on another connection (`retry`). undici waits the same turn (GHSA-35p6-xmwp-9g52).
   */
  start(x: H1Request): void {
    this.#x = x;
    x.conn = this;
    this.#idleArmed = false;
    if (this.#unrefd) {
      this.#unrefd = false;
      this.socket.ref();
    }
    if (!this.#connected) return;
    if (this.#used) this.#check = setImmediate(this.#checked);
    else this.#send(x);
  }

  /** The turn is over and nothing came: send. (The socket's events during it go to `#giveBack`.) */
  readonly #checked = (): void => {
    this.#check = null;
    const x = this.#x;
    if (x === null || x.done) return;
    this.#send(x);
  };

  /**
   * The connection turned out closed or dirty before any of its request was written: the request goes back to the
   * pool, first in line, and the connection goes.
   */
  #giveBack(): void {
    const x = this.#x!;
    clearImmediate(this.#check!);
    this.#check = null;
    this.#x = null;
    x.conn = null;
    this.#owner.retry(x);
    this.#destroy(null);
  }

  #onConnect(): void {
    this.#connected = true;
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    this.socket.setKeepAlive(true, 60_000);
    const x = this.#x;
    if (x !== null) this.#send(x);
  }

  // ---- the request ------------------------------------------------------------------------------------------

  #send(x: H1Request): void {
    const handler = x.handler;
    try {
      handler.onConnect!(x.abort);
    } catch (err) {
      this.failRequest(x, err as Error);
      return;
    }
    if (x.done) return;
    const { method, path, headers } = x.opts;
    const body = requestBody(x.opts.body);
    if (body instanceof Error) return this.failRequest(x, body);
    let head = `${method} ${path} HTTP/1.1\r\n`;
    let hasHost = false;
    const list = headers as string[];
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      const value = list[i + 1]!;
      if (name.length === 4) {
        if (name.toLowerCase() === 'host') hasHost = true;
      } else if (name.length === 14 && name.toLowerCase() === 'content-length') x.declared = Number(value);
      head += `${name}: ${value}\r\n`;
    }
    if (!hasHost) head += `host: ${this.#owner.hostHeader}\r\n`;
    head += this.#owner.keepAlive > 0 ? 'connection: keep-alive\r\n' : 'connection: close\r\n';
    const socket = this.socket;
    this.#read = Read.Head;
    this.#armHeaders();
    if (body == null) {
      if (x.declared > 0) return this.failRequest(x, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body is shorter than its content-length'));
      if (x.declared === -1 && expectsPayload(method)) head += 'content-length: 0\r\n';
      x.written = true;
      socket.write(head + '\r\n', 'latin1');
      this.#sent(x);
    } else if (Buffer.isBuffer(body)) {
      if (x.declared === -1) head += `content-length: ${body.length}\r\n`;
      else if (x.declared !== body.length) return this.failRequest(x, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body does not match its content-length'));
      x.written = true;
      socket.cork();
      socket.write(head + '\r\n', 'latin1');
      if (body.length > 0) socket.write(body);
      socket.uncork();
      if (body.length > 0) {
        try {
          handler.onBodySent?.(body.length, body.length);
        } catch (err) {
          return this.failRequest(x, err as Error);
        }
      }
      this.#sent(x);
    } else {
      if (x.declared === -1) head += 'transfer-encoding: chunked\r\n';
      x.written = true;
      socket.write(head + '\r\n', 'latin1');
      this.#stream(x, body);
    }
  }

  /** The whole request is written (the response-head timer, armed when the head went, counts from here). */
  #sent(x: H1Request): void {
    x.sent = true;
    try {
      x.handler.onRequestSent?.();
    } catch (err) {
      this.failRequest(x, err as Error);
    }
  }

  /** A streamed body: written as it arrives, the body paused while the socket's buffer is full. */
  #stream(x: H1Request, body: Readable): void {
    const chunked = x.declared === -1;
    const socket = this.socket;
    let finished = false;
    const finish = (err: Error | null, discard: boolean = err !== null): void => {
      if (finished) return;
      finished = true;
      x.bodyFinish = null;
      if (this.#bodyWaits === body) this.#bodyWaits = null;
      body.off('data', onData).off('end', onEnd).off('close', onClose);
      // 'error' may still come after 'close' (a broken stream): swallowed from here on.
      body.off('error', onError).on('error', NOOP);
      if (discard) discardBody(body, err);
      if (err !== null) this.failRequest(x, err);
    };
    const onData = (chunk: Buffer): void => {
      if (x.done || this.#x !== x) return finish(null);
      if (chunk.length === 0) return;
      x.bodyBytes += chunk.length;
      if (!chunked && x.bodyBytes > x.declared) return finish(coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body is longer than its content-length'));
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else ok = socket.write(chunk);
      if (this.#headersArmed) this.#headersTimer!.refresh();
      try {
        x.handler.onBodySent?.(chunk.length, x.bodyBytes);
      } catch (err) {
        return finish(err as Error);
      }
      if (!ok) {
        body.pause();
        this.#bodyWaits = body;
      }
    };
    const onEnd = (): void => {
      if (x.done || this.#x !== x) return finish(null);
      if (!chunked && x.bodyBytes !== x.declared) return finish(coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body is shorter than its content-length'));
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      finish(null);
      if (this.#headersArmed) this.#headersTimer!.refresh();
      this.#sent(x);
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => {
      // 'close' may come before 'error' for a broken stream: look again once the error had its chance.
      queueMicrotask(() => finish(body.errored ?? coded('UND_ERR_ABORTED', 'request body closed before its end')));
    };
    x.bodyFinish = finish;
    body.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    if (body.errored) queueMicrotask(() => finish(body.errored));
    else if (body.destroyed) queueMicrotask(() => finish(coded('UND_ERR_ABORTED', 'request body closed before its end')));
    else body.resume();
  }

  /** A streamed body waiting for the socket to drain. */
  #bodyWaits: Readable | null = null;

  #onDrain(): void {
    const body = this.#bodyWaits;
    if (body === null) return;
    this.#bodyWaits = null;
    body.resume();
  }

  // ---- the response -----------------------------------------------------------------------------------------

  #onData(buf: Buffer): void {
    if (this.#check !== null) return this.#giveBack();
    const x = this.#x;
    if (x === null || x.done) {
      // Bytes nobody asked for (a misbehaving upstream, or the rest of an abandoned response): never reused.
      this.#destroy(null);
      return;
    }
    if (x.paused || this.#parsing) {
      this.#pending = this.#pending === null ? buf : Buffer.concat([this.#pending, buf]);
      this.socket.pause();
      return;
    }
    this.#parse(x, buf);
  }

  #parse(x: H1Request, buf: Buffer): void {
    this.#parsing = true;
    try {
      this.#parseLoop(x, buf);
      // Bytes handed back meanwhile (a resume from inside a handler callback): go on with them unless paused.
      while (this.#pending !== null && this.#x === x && !x.paused) {
        const more = this.#pending;
        this.#pending = null;
        this.#parseLoop(x, more);
      }
      if (this.#x === x && x.paused) this.socket.pause();
    } catch (err) {
      this.#destroy(err as Error);
    } finally {
      this.#parsing = false;
    }
  }

  #parseLoop(x: H1Request, buf: Buffer): void {
    let off = 0;
    const len = buf.length;
    while (off < len) {
      if (this.#x !== x || x.done) return;
      if (x.paused) {
        this.#pending = off === 0 ? buf : buf.subarray(off);
        this.socket.pause();
        return;
      }
      switch (this.#read) {
        case Read.Head: {
          if (this.#partial !== null) return this.#rejoin(x, buf, off);
          const end = buf.indexOf(CRLF2, off, 'latin1');
          if (end === -1) {
            // A head with bare LF line ends would never show its CRLFCRLF: fail now, not at the response timeout.
            if (hasBareLf(buf, off)) throw coded('HPE_CR_EXPECTED', 'the upstream sent a response head with bare LF line ends');
            // Up to 3 bytes of the blank line may be here already: they do not count against the head's size.
            return this.#keep(buf, off, MAX_HEAD + 3, 'UND_ERR_HEADERS_OVERFLOW');
          }
          if (end - off > MAX_HEAD) throw coded('UND_ERR_HEADERS_OVERFLOW', 'the upstream response head is too large');
          const head = parseHead(buf.toString('latin1', off, end), x.opts.method);
          off = end + 4;
          this.#onHead(x, head, off < len);
          break;
        }
        case Read.Length: {
          const n = Math.min(this.#remaining, len - off);
          const chunk = off === 0 && n === len ? buf : buf.subarray(off, off + n);
          off += n;
          this.#remaining -= n;
          this.#body(x, chunk);
          if (this.#remaining === 0 && this.#x === x && !x.done) this.#complete(x, EMPTY, off < len);
          break;
        }
        case Read.UntilClose:
          this.#body(x, off === 0 ? buf : buf.subarray(off));
          return;
        case Read.ChunkSize: {
          if (this.#partial !== null) return this.#rejoin(x, buf, off);
          const eol = buf.indexOf('\r\n', off, 'latin1');
          if (eol === -1) return this.#keep(buf, off, MAX_CHUNK_LINE, 'HPE_INVALID_CHUNK_SIZE');
          const size = parseChunkSize(buf.toString('latin1', off, eol));
          off = eol + 2;
          if (size === 0) this.#read = Read.Trailers;
          else {
            this.#remaining = size;
            this.#read = Read.ChunkData;
          }
          break;
        }
        case Read.Trailers: {
          // After the last chunk: an empty line, or trailer fields and then an empty line.
          if (this.#partial !== null) return this.#rejoin(x, buf, off);
          if (len - off < 2) return this.#keep(buf, off, MAX_TRAILERS, 'UND_ERR_HEADERS_OVERFLOW');
          if (buf[off] === 13 && buf[off + 1] === 10) {
            off += 2;
            this.#complete(x, EMPTY, off < len);
            break;
          }
          const block = buf.indexOf(CRLF2, off, 'latin1');
          if (block === -1) return this.#keep(buf, off, MAX_TRAILERS, 'UND_ERR_HEADERS_OVERFLOW');
          if (block - off > MAX_TRAILERS) throw coded('UND_ERR_HEADERS_OVERFLOW', 'the upstream sent too large trailers');
          const trailers = parseTrailers(buf.toString('latin1', off, block).split('\r\n'));
          off = block + 4;
          this.#complete(x, trailers, off < len);
          break;
        }
        case Read.ChunkData: {
          const n = Math.min(this.#remaining, len - off);
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#read = Read.ChunkEnd;
            this.#crlf = 0;
          }
          this.#body(x, chunk);
          break;
        }
        case Read.ChunkEnd: {
          const want = this.#crlf === 0 ? 13 : 10;
          if (buf[off] !== want) throw coded('HPE_STRICT', 'the upstream sent no CRLF after a chunk');
          off++;
          if (++this.#crlf === 2) this.#read = Read.ChunkSize;
          break;
        }
      }
    }
  }

  /** A line or block began in an earlier read: parse again from its start, joined with this read. */
  #rejoin(x: H1Request, buf: Buffer, off: number): void {
    const joined = Buffer.concat([this.#partial!, off === 0 ? buf : buf.subarray(off)]);
    this.#partial = null;
    this.#parseLoop(x, joined);
  }

  /** Keep the start of an incomplete line or block for the next read, bounded by `limit`. */
  #keep(buf: Buffer, off: number, limit: number, code: string): void {
    if (buf.length - off > limit) throw coded(code, 'the upstream sent an overlong head, chunk line or trailer block');
    this.#partial = Buffer.from(buf.subarray(off));
  }

  /** `extra`: bytes follow the head in this read (the body, or bytes nobody asked for after a bodiless response). */
  #onHead(x: H1Request, head: ResponseHead, extra: boolean): void {
    const status = head.status;
    if (status < 200) {
      // 101 was never offered (no Upgrade on this path): the connection is no longer HTTP.
      if (status === 101) throw coded('UND_ERR_SOCKET', 'the upstream switched protocols unasked (101)');
      // The response-head timer is not re-armed: `response_timeout` bounds the wait for the final head, which an
      // upstream sending 1xx after 1xx would otherwise put off for ever.
      // A 100 nobody asked for (Expect is not forwarded) is read past: a client must be able to parse 1xx responses
      // it did not expect (RFC 9110 §15.2). undici fails the request on one (a 502 here before). The other 1xx go
      // to the handler, which relays none of them.
      if (status !== 100) x.handler.onHeaders!(status, head.headers as unknown as Buffer[], x.resume, head.statusText);
      return;
    }
    this.#headersArmed = false;
    this.hint = head.keepAliveHint;
    if (!head.keepAlive) this.#noReuse = true;
    const goOn = x.handler.onHeaders!(status, head.headers as unknown as Buffer[], x.resume, head.statusText);
    if (this.#x !== x || x.done) return;
    if (goOn === false) x.paused = true;
    switch (head.framing) {
      case Framing.None:
        return this.#complete(x, EMPTY, extra);
      case Framing.Length:
        if (head.length === 0) return this.#complete(x, EMPTY, extra);
        this.#remaining = head.length;
        this.#read = Read.Length;
        break;
      case Framing.Chunked:
        this.#read = Read.ChunkSize;
        break;
      case Framing.Close:
        this.#read = Read.UntilClose;
        break;
    }
    this.#armBody();
  }

  #body(x: H1Request, chunk: Buffer): void {
    if (this.#bodyArmed) this.#bodyTimer!.refresh();
    if (chunk.length === 0) return;
    if (x.handler.onData!(chunk) === false && this.#x === x) x.paused = true;
  }

  /** The response is complete. `extra`: bytes followed it, which no request asked for. */
  #complete(x: H1Request, trailers: string[], extra: boolean): void {
    this.#x = null;
    this.#used = true;
    x.done = true;
    this.#read = Read.Head;
    this.#partial = null;
    this.#pending = null;
    this.#endPending = false;
    this.#headersArmed = false;
    this.#bodyArmed = false;
    // The upstream answered before taking the whole body: the rest of it cannot go anywhere (undici: the same).
    if (!x.sent) {
      this.#noReuse = true;
      x.bodyFinish?.(null, true);
    }
    if (extra) this.#noReuse = true;
    try {
      x.handler.onComplete!(trailers);
    } catch {
      /* the attempt catches its own bugs */
    }
    const reusable = !this.#noReuse && !this.#closed;
    if (!reusable) this.#destroy(null);
    else if (this.socket.isPaused()) {
      // Read again before it is reused: an end (or reset) the upstream sent behind the response is still in the
      // socket's buffer, and must be seen before another request goes on this connection.
      this.socket.resume();
      setImmediate(() => this.#owner.released(this, this.usable));
      return;
    }
    this.#owner.released(this, reusable);
  }

  /** Park an idle connection: unref'd, closed after the keep-alive time (shortened by the upstream's hint). */
  parkIdle(hint: number): boolean {
    let ms = this.#owner.keepAlive;
    if (hint >= 0) ms = Math.min(ms, hint - KEEP_ALIVE_MARGIN);
    if (ms <= 0) return false;
    if (this.#idleTimer === null || this.#idleMs !== ms) {
      if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
      this.#idleMs = ms;
      this.#idleTimer = setTimeout(() => { if (this.#idleArmed) this.#destroy(null); }, ms);
      this.#idleTimer.unref();
    } else this.#idleTimer.refresh();
    this.#idleArmed = true;
    this.#unrefd = true;
    this.socket.unref();
    return true;
  }

  /** The `Keep-Alive: timeout=` hint of the current or last response, ms or -1 (read by the pool in `released`). */
  hint = -1;

  resumeRead(x: H1Request): void {
    if (this.#x !== x || !x.paused) return;
    x.paused = false;
    if (this.#bodyArmed) this.#bodyTimer!.refresh();
    const pending = this.#pending;
    this.#pending = null;
    if (pending !== null) {
      if (this.#parsing) {
        this.#pending = pending;
        return;
      }
      this.#parse(x, pending);
    }
    if (this.#x !== x || x.paused) return;
    if (this.#endPending) {
      // The upstream closed while this response was paused: an until-close body is complete now; any other
      // framing ends short of its length or last chunk.
      this.#endPending = false;
      if (this.#read === Read.UntilClose) this.#complete(x, EMPTY, false);
      else this.#destroy(coded('UND_ERR_SOCKET', 'other side closed'));
      return;
    }
    this.socket.resume();
  }

  // ---- timers ------------------------------------------------------------------------------------------------

  #armHeaders(): void {
    const ms = this.#owner.headersTimeout;
    if (ms <= 0) return;
    this.#headersArmed = true;
    if (this.#headersTimer === null) {
      this.#headersTimer = setTimeout(() => {
        if (this.#headersArmed) this.#destroy(coded('UND_ERR_HEADERS_TIMEOUT', `no response headers within ${ms} ms`));
      }, ms);
      this.#headersTimer.unref();
    } else this.#headersTimer.refresh();
  }

  #armBody(): void {
    const ms = this.#owner.bodyTimeout;
    if (ms <= 0) return;
    this.#bodyArmed = true;
    if (this.#bodyTimer === null) {
      this.#bodyTimer = setTimeout(() => {
        // A response the handler holds paused is not the upstream's delay (relay.ts watches the client then).
        if (!this.#bodyArmed) return;
        if (this.#x?.paused) this.#bodyTimer!.refresh();
        else this.#destroy(coded('UND_ERR_BODY_TIMEOUT', `no response body data within ${ms} ms`));
      }, ms);
      this.#bodyTimer.unref();
    } else this.#bodyTimer.refresh();
  }

  // ---- the end of a request or of the connection -------------------------------------------------------------

  /** Stop `x` with `err`: the connection goes too unless nothing of the request was written. */
  failRequest(x: H1Request, err: Error): void {
    if (x.done) return;
    if (this.#x === x && x.written) {
      this.#error ??= err;
      this.#destroy(err);
      return;
    }
    if (this.#x === x) {
      this.#x = null;
      this.#headersArmed = false;
      if (this.#check !== null) {
        clearImmediate(this.#check);
        this.#check = null;
      }
      this.#owner.released(this, this.usable);
    }
    x.fail(err);
  }

  #onEnd(): void {
    if (this.#check !== null) return this.#giveBack();
    const x = this.#x;
    if (x !== null && (x.paused || this.#pending !== null)) {
      // Bytes of the response still wait for the handler to resume: the end is judged after them (resumeRead).
      this.#noReuse = true;
      this.#endPending = true;
      return;
    }
    if (x !== null && this.#read === Read.UntilClose) {
      this.#noReuse = true;
      this.#complete(x, EMPTY, false);
      return;
    }
    this.#destroy(x !== null ? coded('UND_ERR_SOCKET', 'other side closed') : null);
  }

  /** The socket ended while the response was paused: judged on resume (`resumeRead`). */
  #endPending = false;

  #onError(err: Error): void {
    if (this.#check !== null) {
      this.#error ??= err;
      return this.#giveBack();
    }
    // An upstream that ends an until-close body with a reset (SO_LINGER 0, unread request bytes) sent it whole,
    // as undici judges it too.
    // Likewise a reset while bytes of the response wait for a paused handler: they are judged first.
    const x = this.#x;
    if (x !== null && (err as { code?: string }).code === 'ECONNRESET' && (this.#read === Read.UntilClose || x.paused || this.#pending !== null)) {
      this.#onEnd();
      return;
    }
    this.#destroy(err);
  }

  #onClose(): void {
    if (this.#check !== null) return this.#giveBack();
    if (this.#endPending && this.#x !== null) {
      this.#shut();
      return;
    }
    this.#destroy(this.#error ?? coded('UND_ERR_SOCKET', 'other side closed'));
  }

  /** Close the connection; the request on it, if any, fails with `err`. */
  #destroy(err: Error | null): void {
    const x = this.#x;
    if (x !== null && err !== null && !x.done) {
      this.#x = null;
      x.bodyFinish?.(null, true);
      x.fail(err);
    } else if (x !== null && err === null && !x.done) {
      // Closed under a request for no reason of its own (a pool closing, stray bytes): report it.
      return this.#destroy(coded('UND_ERR_SOCKET', 'connection closed'));
    }
    this.#x = null;
    if (err !== null) this.#error ??= err;
    this.#shut();
  }

  /** Timers cleared, the socket destroyed, the pool told: once. */
  #shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    if (this.#headersTimer !== null) clearTimeout(this.#headersTimer);
    if (this.#bodyTimer !== null) clearTimeout(this.#bodyTimer);
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#headersArmed = this.#bodyArmed = this.#idleArmed = false;
    this.socket.destroy();
    this.#owner.gone(this);
  }

  /** Close now if idle; otherwise once the request in flight is done (the pool closing). */
  close(): void {
    this.#noReuse = true;
    if (this.#x === null) this.#destroy(null);
  }
}

/**
 * Give up on a request body stream without taking the client's connection with it: an IncomingMessage destroyed
 * with its socket attached destroys the socket, and the client would never get its 502 (undici does the same).
 */
function discardBody(body: Readable, err: Error | null): void {
  if (body.destroyed) return;
  if (body instanceof http.IncomingMessage) (body as { socket: unknown }).socket = null;
  body.on('error', NOOP);
  body.destroy(err ?? undefined);
}
