/**
 * @module The request body on its way upstream: the stream the pool consumes, its size limit while it streams,
 * `Expect: 100-continue` held until an upstream connection is ready, and the upload's inactivity bound. Exists
 * only for requests that have a body.
 */
import type http from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { BODY_TOO_LARGE, CLIENT_IDLE, coded } from './errors.js';
import type { IdleSweeper, IdleWatched } from './idle.js';

/** Who gives up when the upload stalls: the upstream attempt. */
export interface Cancellable {
  cancel(err: Error): void;
}

/**
 * Counts the bytes of a request body that is not delimited by Content-Length and fails with
 * `BATON_BODY_TOO_LARGE` once they pass the limit; the pool then aborts the upstream request with that error.
 * Also the HTTP/2 body adapter (a destroyed Http2ServerRequest would reset the stream).
 */
export class BodyLimit extends Transform {
  readonly #limit: number;
  #seen = 0;

  /** `limit` 0 = count nothing, just pass through. */
  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#limit > 0 && this.#seen > this.#limit) {
      cb(coded(BODY_TOO_LARGE, `request body larger than ${this.#limit} bytes`));
      return;
    }
    cb(null, chunk);
  }
}

const kContinue = Symbol('baton.continue');

/**
 * The server's 'checkContinue' listener marks the request (`Expect: 100-continue`) instead of letting Node send
 * `100 Continue` at once: the upstream attempt sends it only when a connection is ready for the body, so a
 * refused request (413, 404, 502) gets its final answer without the client uploading anything.
 */
export function holdContinue(req: http.IncomingMessage): void {
  (req as { [kContinue]?: boolean })[kContinue] = true;
}

export function awaitsContinue(req: http.IncomingMessage): boolean {
  return (req as { [kContinue]?: boolean })[kContinue] === true;
}

/** A stalled upload is bounded by the client's `body_timeout` and the upstream's `idle_timeout`, whichever is shorter; 0 = off. */
export function uploadIdleLimit(bodyTimeout: number, idleTimeout: number): number {
  if (bodyTimeout === 0) return idleTimeout;
  return idleTimeout === 0 ? bodyTimeout : Math.min(bodyTimeout, idleTimeout);
}

export class RequestBody implements IdleWatched {
  readonly #req: http.IncomingMessage;
  readonly #owner: Cancellable;
  #stream: Readable | null = null;
  /** The client waits for `100 Continue`. */
  #expectsContinue: boolean;
  #sweeper: IdleSweeper | null = null;
  /** The pool wrote the whole body upstream. */
  sent = false;
  idleSince = 0;
  idleLimit = 0;

  constructor(req: http.IncomingMessage, owner: Cancellable, readonly limit: number) {
    this.#req = req;
    this.#owner = owner;
    this.#expectsContinue = awaitsContinue(req);
  }

  /**
   * The body as the pool consumes it. HTTP/1.1: the request itself (the pool detaches its socket before
   * destroying it). HTTP/2: through a BodyLimit, since destroying an Http2ServerRequest resets the stream; and a body
   * without Content-Length under a `max_body_size` goes through one that counts it.
   */
  get stream(): Readable {
    if (this.#stream === null) {
      const req = this.#req;
      if (req.httpVersionMajor === 2 || this.limit > 0) {
        const pass = new BodyLimit(this.limit);
        req.on('error', (err) => pass.destroy(err)).pipe(pass);
        this.#stream = pass;
      } else {
        this.#stream = req;
      }
    }
    return this.#stream;
  }

  /** Nothing of the body was read yet, so another target may still get all of it. */
  get untouched(): boolean {
    return this.#stream === null || !this.#stream.readableDidRead;
  }

  /** An upstream connection is ready for the body: ask for it, and bound its inactivity from now. */
  connected(res: http.ServerResponse, sweeper: IdleSweeper, idle: number): void {
    if (this.#expectsContinue) {
      this.#expectsContinue = false;
      res.writeContinue();
    }
    if (idle > 0 && !this.sent && this.#sweeper === null) {
      this.idleLimit = idle;
      this.#sweeper = sweeper;
      sweeper.watch(this, Date.now());
    }
  }

  progressed(): void {
    if (this.#sweeper !== null) this.idleSince = Date.now();
  }

  finished(): void {
    this.sent = true;
    this.unwatch();
  }

  unwatch(): void {
    if (this.#sweeper !== null) {
      this.#sweeper.unwatch(this);
      this.#sweeper = null;
    }
  }

  onIdle(now: number): void {
    const sweeper = this.#sweeper;
    if (sweeper === null) return;
    if (this.#req.readableLength > 0) {
      // Bytes are waiting: the upstream is the one not reading, and the pool's response timeout covers it.
      sweeper.watch(this, now);
      return;
    }
    this.#sweeper = null;
    this.#owner.cancel(coded(CLIENT_IDLE, 'client stopped sending the request body'));
  }
}
