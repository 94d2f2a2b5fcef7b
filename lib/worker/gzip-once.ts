/**
 * @module gzip of a small body in one synchronous call, on a gzip stream kept per window size and reset after
 * each body. `zlib.gzipSync` builds a new stream for every call: its native state, a 16 KiB output buffer and
 * a JavaScript object that the native handle keeps alive past the young-generation collections. On Node 24 these
 * pile up until a full collection (8 KiB bodies in a loop: a 5-9 ms one per ~4500 calls, 60-68 MiB of output
 * buffers waiting for it, RSS 144 MiB against 60 with a kept stream), and those pauses are the response-time
 * tail of a compressing proxy. A reset stream compresses byte for byte as
 * a new one (deflateReset keeps level, window and memory); the output goes through one scratch buffer, copied out.
 * Brotli is not kept this way: Node's reset of a brotli stream drops its parameters (quality 11 afterwards, 25
 * times the CPU), so brotli bodies still get a new stream each (`zlib.brotliCompressSync`).
 * Memory kept: one stream per window size in use, at most seven (windowBits 9-15), about 1.4 MiB for all seven.
 */
import type zlib from 'node:zlib';
import { gzipEngine, type GzipEngine } from '../util/internals.js';

/** The output of one call is gathered here, then copied out in one piece (nearly every compressed body fits). */
const SCRATCH_BYTES = 16 * 1024;

const engines = new Map<number, GzipEngine>();
let scratch: Buffer | null = null;

/** `body` gzipped with `options` (level, windowBits and memLevel all set): the bytes `zlib.gzipSync` would make. */
export function gzipOnce(body: Buffer, options: zlib.ZlibOptions): Buffer {
  const key = (options.level! * 16 + options.windowBits!) * 16 + options.memLevel!;
  let engine = engines.get(key);
  if (engine === undefined) {
    engine = gzipEngine(options);
    engines.set(key, engine);
  }
  const out = (scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES));
  const parts: Buffer[] = [];
  let size = 0;
  let inOff = 0;
  let inLen = body.length;
  try {
    for (;;) {
      engine.finish(body, inOff, inLen, out);
      const outLeft = engine.state[0]!;
      const inLeft = engine.state[1]!;
      const have = out.length - outLeft;
      if (have > 0) {
        // A copy: the scratch buffer is written again by the next call, the response may still hold these bytes.
        parts.push(Buffer.from(out.subarray(0, have)));
        size += have;
      }
      inOff += inLen - inLeft;
      inLen = inLeft;
      if (outLeft !== 0) break;
    }
    engine.reset();
  } catch (err) {
    // A failed stream is not used again; the next body of this size gets a new one.
    engines.delete(key);
    throw err;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
