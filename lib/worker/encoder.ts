/**
 * @module One response's compressed body. A response of known, small size (up to 64 KiB, nearly every API answer
 * and page) is gathered and compressed in one synchronous call, with a window sized to it as nginx does: a zlib
 * stream costs a thread-pool round trip per write and its full-size state per response, several times the work
 * of compressing a few KiB (measured: ~0.6-1 ms of CPU for an 8 KiB page streamed, ~0.05-0.1 ms in one call).
 * That call runs on a stream kept per coding and window size (one-call.ts).
 * Anything else streams through a zlib stream chunk by chunk, with a flush whenever the upstream pauses (one
 * `setImmediate` after the data of an event-loop turn), so server-sent events arrive as they are sent; `write`
 * then reports backpressure from the zlib stream, which is itself held while the client's buffer is full.
 */
import type { ServerResponse } from 'node:http';
import type zlib from 'node:zlib';
import type { CompressionAlgorithm } from '../config/types.js';
import { brotliOnce, gzipOnce } from './one-call.js';

/** gzip level 5 and brotli quality 5 with at most a 1 MiB window: close to the best ratio for dynamic content at a
 * fraction of the CPU; brotli 4 compresses as well but allocates about 580 KiB per stream against 230 KiB. */
const GZIP_LEVEL = 5;
const BROTLI_QUALITY = 5;
const BROTLI_LGWIN = 20;
/** Bodies up to this size (by their Content-Length) are compressed in one call. */
export const ONE_CALL_MAX = 64 * 1024;

let loaded: typeof zlib | null = null;
/** node:zlib, loaded by the first compressed response: a worker whose routes never compress never loads it. */
function zlibModule(): typeof zlib {
  return (loaded ??= process.getBuiltinModule('node:zlib'));
}

/** Where the encoder reports to: the response relay. */
export interface EncoderOwner {
  /** The encoder took what it had been given: the upstream may send more. */
  drained(): void;
  /** Compressed bytes handed to the client. */
  wrote(bytes: number): void;
  /** Compression failed: the response cannot be completed. */
  failed(err: Error): void;
}

export interface Encoder {
  /** One upstream chunk; false when the upstream must wait (`owner.drained()` says when it may go on). */
  write(chunk: Buffer): boolean;
  /** The upstream body is complete: finish, then `done` (trailers and the response's end). */
  end(done: () => void): void;
  destroy(): void;
}

/** `length`: the upstream's Content-Length, or -1. */
export function createEncoder(coding: CompressionAlgorithm, res: ServerResponse, owner: EncoderOwner, length: number): Encoder {
  return length >= 0 && length <= ONE_CALL_MAX ? new OneCallEncoder(coding, res, owner, length) : new StreamEncoder(coding, res, owner, length);
}

/** nginx's sizing (ngx_http_gzip_filter_memory): the smallest window that holds the body, and memory to match. */
function gzipOptions(length: number): zlib.ZlibOptions {
  let windowBits = 15;
  let memLevel = 8;
  if (length > 0) {
    while (windowBits > 9 && length < (1 << (windowBits - 1)) - 262) {
      windowBits--;
      memLevel--;
    }
  }
  return { level: GZIP_LEVEL, windowBits, memLevel: Math.max(1, memLevel) };
}

/** Quality 5, text mode, the smallest window that holds the body (`length`; -1: unknown, the largest). */
function brotliParams(length: number): Record<number, number> {
  const c = zlibModule().constants;
  return {
    [c.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [c.BROTLI_PARAM_MODE]: c.BROTLI_MODE_TEXT,
    [c.BROTLI_PARAM_LGWIN]: length >= 0 ? Math.min(BROTLI_LGWIN, Math.max(10, Math.ceil(Math.log2(Math.max(1, length))))) : BROTLI_LGWIN,
  };
}

/** A streamed body also tells the encoder its size when it is known. */
function brotliOptions(length: number): zlib.BrotliOptions {
  const params = brotliParams(length);
  if (length > 0) params[zlibModule().constants.BROTLI_PARAM_SIZE_HINT] = length;
  return { params };
}

/** A small body of known size: gathered (bounded by its Content-Length), compressed in one call at its end. */
class OneCallEncoder implements Encoder {
  readonly #coding: CompressionAlgorithm;
  readonly #res: ServerResponse;
  readonly #owner: EncoderOwner;
  readonly #length: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(coding: CompressionAlgorithm, res: ServerResponse, owner: EncoderOwner, length: number) {
    this.#coding = coding;
    this.#res = res;
    this.#owner = owner;
    this.#length = length;
  }

  write(chunk: Buffer): boolean {
    this.#size += chunk.length;
    // More than announced (the pool stops at the Content-Length; be sure anyway): never gather past the bound.
    if (this.#size > ONE_CALL_MAX) {
      this.#owner.failed(new Error('upstream body longer than its Content-Length'));
      return true;
    }
    this.#chunks.push(chunk);
    return true;
  }

  end(done: () => void): void {
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    let out: Buffer;
    try {
      out = this.#coding === 'gzip' ? gzipOnce(body, gzipOptions(this.#length)) : brotliOnce(body, brotliParams(this.#length));
    } catch (err) {
      this.#owner.failed(err as Error);
      return;
    }
    this.#owner.wrote(out.length);
    this.#res.write(out);
    done();
  }

  destroy(): void {
    this.#chunks = [];
  }
}

/** A body of unknown or large size, streamed through zlib with a flush whenever the upstream pauses. */
class StreamEncoder implements Encoder {
  readonly #stream: zlib.Gzip | zlib.BrotliCompress;
  readonly #flushKind: number;
  #flushPending = false;
  #ended = false;
  readonly #flush = (): void => {
    this.#flushPending = false;
    if (!this.#ended && !this.#stream.destroyed) this.#stream.flush(this.#flushKind);
  };

  constructor(coding: CompressionAlgorithm, res: ServerResponse, owner: EncoderOwner, length: number) {
    if (coding === 'gzip') {
      this.#stream = zlibModule().createGzip(gzipOptions(length));
      this.#flushKind = zlibModule().constants.Z_SYNC_FLUSH;
    } else {
      this.#stream = zlibModule().createBrotliCompress(brotliOptions(length));
      this.#flushKind = zlibModule().constants.BROTLI_OPERATION_FLUSH;
    }
    const stream = this.#stream;
    let held = false;
    const resume = () => {
      held = false;
      stream.resume();
    };
    stream.on('data', (chunk: Buffer) => {
      owner.wrote(chunk.length);
      if (!res.write(chunk) && !held) {
        held = true;
        stream.pause();
        res.once('drain', resume);
      }
    });
    stream.on('drain', () => owner.drained());
    stream.on('error', (err) => owner.failed(err));
    // A response that ends early (client gone, cut) frees the zlib memory now rather than at some GC.
    res.once('close', () => stream.destroy());
  }

  write(chunk: Buffer): boolean {
    const ok = this.#stream.write(chunk);
    if (!this.#flushPending) {
      this.#flushPending = true;
      setImmediate(this.#flush);
    }
    return ok;
  }

  end(done: () => void): void {
    this.#ended = true;
    this.#stream.once('end', done);
    this.#stream.end();
  }

  destroy(): void {
    this.#ended = true;
    this.#stream.destroy();
  }
}
