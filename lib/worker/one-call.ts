/**
 * @module A small body compressed in one synchronous call, on a stream kept per coding and window size and
 * started over after each body. `zlib.gzipSync` and `zlib.brotliCompressSync` build a new stream for every call:
 * its native state, a 16 KiB output buffer and a JavaScript object that the native handle keeps alive past the
 * young-generation collections. On Node 24 these pile up until a full collection (8 KiB gzip bodies in a loop:
 * a 5-9 ms one per ~4500 calls, 60-68 MiB of output buffers waiting for it, RSS 144 MiB against 60 with a kept
 * stream; brotli: RSS 142 against 68), and those pauses are the response-time tail of a compressing proxy. A
 * kept stream compresses byte for byte as a new one (internals.ts: gzip's deflateReset keeps its settings, brotli's
 * binding is initialised again with them); the output goes through one scratch buffer and is copied out.
 * Memory kept: one stream per window size in use: gzip at most seven (windowBits 9-15, about 1.4 MiB for all),
 * brotli at most seven for these sizes (window 2^10-2^16, under 2 MiB for all).
 */
import { brotliEngine, gzipEngine, type CompressEngine } from '../util/internals.js';
import type zlib from 'node:zlib';

/** The output of one call is gathered here, then copied out in one piece (nearly every compressed body fits). */
const SCRATCH_BYTES = 16 * 1024;

const engines = new Map<string, CompressEngine>();
let scratch: Buffer | null = null;

/** `body` gzipped with `options` (level, windowBits and memLevel all set): the bytes `zlib.gzipSync` would make. */
export function gzipOnce(body: Buffer, options: zlib.ZlibOptions): Buffer {
  return compress(`gzip ${options.level} ${options.windowBits} ${options.memLevel}`, () => gzipEngine(options), body);
}

/** `body` compressed with brotli `params` (no size hint: it would differ per body): the bytes
 * `zlib.brotliCompressSync` would make. */
export function brotliOnce(body: Buffer, params: Readonly<Record<number, number>>): Buffer {
  let key = 'br';
  for (const k in params) key += ` ${k}=${params[k]}`;
  return compress(key, () => brotliEngine(params), body);
}

function compress(key: string, make: () => CompressEngine, body: Buffer): Buffer {
  let engine = engines.get(key);
  if (engine === undefined) {
    engine = make();
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
  } catch (err) {
    // A failed stream is not used again; the next body of this kind gets a new one.
    engines.delete(key);
    throw err;
  }
  try {
    engine.reset();
  } catch {
    // This body is complete; only the stream cannot be used again.
    engines.delete(key);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
