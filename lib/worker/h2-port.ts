/**
 * @module The stream an HTTP/2 session runs on: a thin Duplex over the client's socket, so the drain can put a
 * real shutdown notice (GOAWAY with the maximum stream id) between the session's frames, and the connection guard
 * can count the client's frames before nghttp2 processes them. nghttp2 itself treats any GOAWAY it sends as final
 * and ignores streams opened after it; Node does not expose nghttp2's shutdown notice, and writing to the
 * session's own socket aborts the process (the session sees a write it did not make). Through this Duplex every
 * session write is a whole batch of frames, so a frame written between two of them lands on a frame boundary.
 */
import { Duplex } from 'node:stream';
import type http2 from 'node:http2';
import type net from 'node:net';
import { sessionSocket, wrappedStream } from '../util/internals.js';
import { FrameCounter } from './h2-frames.js';

/** GOAWAY (type 7) on stream 0, last stream id 2^31-1, NO_ERROR: "no new streams soon", RFC 9113 §6.8. */
const SHUTDOWN_NOTICE = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/** Decides, chunk by chunk, whether the client's bytes reach the session (see h2-guard.ts). */
export interface PortGuard {
  allow(port: H2Port, chunk: Buffer): boolean;
}

type Chunk = { chunk: Buffer };

const kPort = Symbol('baton.h2port');
type PortSocket = net.Socket & { [kPort]?: H2Port };

// Socket listeners shared by every port (`this` is the socket): no closures per connection.
function onData(this: PortSocket, chunk: Buffer): void {
  const port = this[kPort]!;
  if (port.guard !== null && !port.guard.allow(port, chunk)) {
    port.guard = null;
    port.refused = true;
  }
  if (port.refused) return;
  if (!port.push(chunk)) this.pause();
}
function onEnd(this: PortSocket): void {
  this[kPort]!.push(null);
}
function onError(this: PortSocket, err: Error): void {
  this[kPort]!.destroy(err);
}
function onClose(this: PortSocket): void {
  this[kPort]!.destroy();
}
function onDrain(this: PortSocket): void {
  const port = this[kPort]!;
  const cb = port.writeDone;
  port.writeDone = null;
  cb?.();
}

export class H2Port extends Duplex {
  readonly socket: net.Socket;
  /** The session running on this port, once it exists. */
  session: http2.ServerHttp2Session | null = null;
  /** Counts the client's streams and resets for `guard`. */
  readonly frames = new FrameCounter();
  guard: PortGuard | null = null;
  /** The guard refused the client's bytes: nothing more reaches the session, which is being closed. */
  refused = false;
  /** A write waiting for the socket to drain. */
  writeDone: (() => void) | null = null;
  #noticeSent = false;
  /** The notice waits for the session's first write: a server's first frame must be its SETTINGS. */
  #noticeDeferred = false;
  #sessionWrote = false;

  constructor(socket: net.Socket) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    (socket as PortSocket)[kPort] = this;
    // The session cannot set it through us: without it small frames wait for delayed ACKs (40 ms stalls).
    socket.setNoDelay(true);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** The port a session runs on: over an H2Port, a session's socket is a JSStreamSocket around it. */
  static of(session: http2.Http2Session | undefined): H2Port | undefined {
    const socket = session && sessionSocket(session);
    const stream = socket && wrappedStream(socket);
    return stream instanceof H2Port ? stream : undefined;
  }

  // What the session and the request handler read through their socket proxy.
  get remoteAddress(): string | undefined { return this.socket.remoteAddress; }
  get remotePort(): number | undefined { return this.socket.remotePort; }
  get remoteFamily(): string | undefined { return this.socket.remoteFamily; }
  get localAddress(): string | undefined { return this.socket.localAddress; }
  get localPort(): number | undefined { return this.socket.localPort; }
  get encrypted(): boolean { return (this.socket as { encrypted?: boolean }).encrypted === true; }
  get alpnProtocol(): string | false | undefined { return (this.socket as { alpnProtocol?: string | false }).alpnProtocol; }
  get servername(): string | false | undefined { return (this.socket as { servername?: string | false }).servername; }
  setNoDelay(): this { return this; }
  setKeepAlive(enable?: boolean, delay?: number): this { this.socket.setKeepAlive(enable, delay); return this; }
  setTimeout(ms: number, cb?: () => void): this { this.socket.setTimeout(ms, cb); return this; }
  ref(): this { this.socket.ref(); return this; }
  unref(): this { this.socket.unref(); return this; }

  /** Send the shutdown notice once, between two session writes (after the first: a session's SETTINGS). */
  notice(): boolean {
    if (this.#noticeSent || this.socket.destroyed || !this.socket.writable) return false;
    this.#noticeSent = true;
    if (this.#sessionWrote) this.socket.write(SHUTDOWN_NOTICE);
    else this.#noticeDeferred = true;
    return true;
  }

  #wrote(): void {
    this.#sessionWrote = true;
    if (!this.#noticeDeferred) return;
    this.#noticeDeferred = false;
    this.socket.write(SHUTDOWN_NOTICE);
  }

  override _read(): void {
    this.socket.resume();
  }

  // Completed at once unless the socket pushes back: waiting for each flush would serialize the session.
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const ok = this.socket.write(chunk);
    this.#wrote();
    if (ok) cb();
    else this.#afterDrain(cb);
  }

  override _writev(chunks: Chunk[], cb: (err?: Error | null) => void): void {
    let ok = true;
    this.socket.cork();
    for (const { chunk } of chunks) ok = this.socket.write(chunk);
    this.#wrote();
    this.socket.uncork();
    if (ok) cb();
    else this.#afterDrain(cb);
  }

  // A Writable never has two writes in flight: one pending callback at most.
  #afterDrain(cb: () => void): void {
    this.writeDone = cb;
    this.socket.once('drain', onDrain);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
