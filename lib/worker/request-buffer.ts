/**
 * @module Request buffering (`limits.request_buffering: on`, nginx's `proxy_request_buffering`): the whole body
 * is read before an upstream connection is taken, so a client uploading slowly holds only its own connection
 * (issue 16: 1 200 slow uploads used to fill every upstream pool). The first `request_buffer_size` bytes stay in
 * memory; a larger body goes on to a temp file, unlinked as soon as it is created (nothing is left behind, even
 * after a crash). A buffered body can be replayed: every attempt reads it again from the start.
 *
 * The client's limits still hold while it uploads: `max_body_size` (413, counted here for bodies without
 * Content-Length), `body_timeout` (408, through the idle sweeper), and `Expect: 100-continue` is answered when
 * the reading starts, since no upstream connection is waited for.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BODY_TOO_LARGE, CLIENT_IDLE, coded } from './errors.js';
import type { IdleSweeper, IdleWatched } from './idle.js';
import { awaitsContinue } from './request-body.js';

let fileCounter = 0;

export class BodyBuffer implements IdleWatched {
  readonly #req: http.IncomingMessage;
  readonly #limit: number;
  readonly #memory: number;
  #done: ((err: Error | null) => void) | null;
  #chunks: Buffer[] = [];
  #size = 0;
  /** The temp file once the body outgrew memory, and how much of it is written. */
  #fd = -1;
  #written = 0;
  #writing = false;
  #ended = false;
  #data: Buffer | null = null;
  /** Readers of the temp file not closed yet: the descriptor outlives them (see FileSlice). */
  readonly #slices = new Set<FileSlice>();
  #disposed = false;
  #sweeper: IdleSweeper | null = null;
  idleSince = 0;
  idleLimit = 0;

  /** `limit`: bytes a body without Content-Length may have (0 = none); `memory`: bytes kept in memory. */
  constructor(req: http.IncomingMessage, limit: number, memory: number, done: (err: Error | null) => void) {
    this.#req = req;
    this.#limit = limit;
    this.#memory = memory;
    this.#done = done;
  }

  /** Read the body; `idle` bounds the client's inactivity (0 = none). */
  start(res: http.ServerResponse, sweeper: IdleSweeper, idle: number): void {
    const req = this.#req;
    if (awaitsContinue(req)) res.writeContinue();
    if (idle > 0) {
      this.idleLimit = idle;
      this.#sweeper = sweeper;
      sweeper.watch(this, Date.now());
    }
    req.on('data', (chunk: Buffer) => this.#chunk(chunk));
    req.on('end', () => {
      this.#ended = true;
      this.#maybeDone();
    });
    req.on('error', (err: Error) => this.#finish(err));
  }

  /** Bytes buffered (the whole body once done). */
  get length(): number {
    return this.#size;
  }

  /** The body for one upstream attempt, from its first byte: a Buffer, or a stream of the temp file. */
  source(): Buffer | Readable {
    if (this.#fd === -1) return (this.#data ??= this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size));
    const slice = new FileSlice(this.#fd, this.#size);
    this.#slices.add(slice);
    slice.once('close', () => {
      this.#slices.delete(slice);
      this.#closeFile();
    });
    return slice;
  }

  /** Give up (the client left): stop reading, forget the body. */
  abort(): void {
    this.#done = null;
    this.#unwatch();
    this.dispose();
  }

  /**
   * Free the memory and the temp file (after the last attempt). A slice an attempt never read (its connect failed,
   * the pool never started on it) is destroyed here: open, it would hold the file, and its disk space, forever.
   */
  dispose(): void {
    this.#chunks = [];
    this.#data = null;
    this.#disposed = true;
    for (const slice of this.#slices) slice.destroy();
    this.#closeFile();
  }

  /**
   * Close the temp file once nothing uses its descriptor: no write in flight, no reader open. Closing it earlier
   * would let the kernel hand the same number to a new socket, which a late read or write would then hit.
   */
  #closeFile(): void {
    if (!this.#disposed || this.#fd === -1 || this.#writing || this.#slices.size > 0) return;
    fs.close(this.#fd, () => {});
    this.#fd = -1;
  }

  onIdle(): void {
    this.#sweeper = null;
    this.#finish(coded(CLIENT_IDLE, 'client stopped sending the request body'));
  }

  #chunk(chunk: Buffer): void {
    if (this.#done === null) return;
    if (this.#sweeper !== null) this.idleSince = Date.now();
    this.#size += chunk.length;
    if (this.#limit > 0 && this.#size > this.#limit) {
      this.#finish(coded(BODY_TOO_LARGE, `request body larger than ${this.#limit} bytes`));
      return;
    }
    this.#chunks.push(chunk);
    if (this.#fd === -1 && this.#size > this.#memory) {
      try {
        this.#spill();
      } catch (err) {
        this.#finish(err as Error);
        return;
      }
    }
    if (this.#fd !== -1) this.#flush();
  }

  /** Past `request_buffer_size`: everything so far and everything after goes to a temp file. */
  #spill(): void {
    const file = path.join(os.tmpdir(), `baton-body-${process.pid}-${++fileCounter}`);
    this.#fd = fs.openSync(file, 'wx+', 0o600);
    fs.unlinkSync(file);
  }

  /** Write what is pending; the client is paused while a write is in flight (the disk sets the pace). */
  #flush(): void {
    if (this.#writing || this.#chunks.length === 0 || this.#fd === -1) return;
    const buf = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#writing = true;
    this.#req.pause();
    fs.write(this.#fd, buf, 0, buf.length, this.#written, (err) => {
      this.#writing = false;
      this.#written += buf.length;
      if (this.#done === null) {
        this.#closeFile();
        return;
      }
      if (err !== null) {
        this.#finish(err);
        return;
      }
      this.#req.resume();
      this.#flush();
      this.#maybeDone();
    });
  }

  #maybeDone(): void {
    if (this.#ended && !this.#writing && (this.#fd === -1 || this.#chunks.length === 0)) this.#finish(null);
  }

  #finish(err: Error | null): void {
    const done = this.#done;
    if (done === null) return;
    this.#done = null;
    this.#unwatch();
    if (err !== null) this.dispose();
    done(err);
  }

  #unwatch(): void {
    if (this.#sweeper !== null) {
      this.#sweeper.unwatch(this);
      this.#sweeper = null;
    }
  }
}

/**
 * The temp file from its first byte, by positioned reads on a descriptor it does not own: destroying it (the pool
 * does, when it is done with a body) never closes the file, and waits for a read in flight (an `fs.ReadStream`
 * closes its descriptor when destroyed, whatever `autoClose` says).
 */
class FileSlice extends Readable {
  readonly #fd: number;
  readonly #size: number;
  #pos = 0;
  #reading = false;
  #pendingDestroy: (() => void) | null = null;

  constructor(fd: number, size: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#fd = fd;
    this.#size = size;
  }

  override _read(n: number): void {
    if (this.#pos >= this.#size) {
      this.push(null);
      return;
    }
    const len = Math.min(Math.max(n, 16 * 1024), 64 * 1024, this.#size - this.#pos);
    const buf = Buffer.allocUnsafe(len);
    this.#reading = true;
    fs.read(this.#fd, buf, 0, len, this.#pos, (err, bytes) => {
      this.#reading = false;
      const destroy = this.#pendingDestroy;
      if (destroy !== null) return destroy();
      if (err !== null) return void this.destroy(err);
      if (bytes === 0) return void this.destroy(new Error('the request body temp file is shorter than its body'));
      this.#pos += bytes;
      this.push(bytes === len ? buf : buf.subarray(0, bytes));
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#reading) this.#pendingDestroy = () => cb(err);
    else cb(err);
  }
}
