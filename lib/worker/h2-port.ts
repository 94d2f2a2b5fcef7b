/**
 * @module The stream an HTTP/2 session runs on: a thin Duplex over the client's socket, so the drain can put a
 * real shutdown notice (GOAWAY with the maximum stream id) between the session's frames. nghttp2 itself
 * treats any GOAWAY it sends as final and ignores streams opened after it; Node does not expose nghttp2's
 * shutdown notice, and writing to the session's own socket aborts the process (the session sees a write it did
 * not make). Through this Duplex every session write is a whole batch of frames, so a frame written between two
 * of them lands on a frame boundary.
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';

/** GOAWAY (type 7) on stream 0, last stream id 2^31-1, NO_ERROR: "no new streams soon", RFC 9113 §6.8. */
const SHUTDOWN_NOTICE = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

type Chunk = { chunk: Buffer };

export class H2Port extends Duplex {
  readonly socket: net.Socket;
  #noticeSent = false;

  constructor(socket: net.Socket) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    // The session cannot set it through us: without it small frames wait for delayed ACKs (40 ms stalls).
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      if (!this.push(c)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
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

  /** Send the shutdown notice once, between two session writes. */
  notice(): boolean {
    if (this.#noticeSent || this.socket.destroyed || !this.socket.writable) return false;
    this.#noticeSent = true;
    this.socket.write(SHUTDOWN_NOTICE);
    return true;
  }

  override _read(): void {
    this.socket.resume();
  }

  // Completed at once unless the socket pushes back: waiting for each flush would serialize the session.
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once('drain', () => cb());
  }

  override _writev(chunks: Chunk[], cb: (err?: Error | null) => void): void {
    let ok = true;
    this.socket.cork();
    for (const { chunk } of chunks) ok = this.socket.write(chunk);
    this.socket.uncork();
    if (ok) cb();
    else this.socket.once('drain', () => cb());
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
