import crypto from 'node:crypto';
import zlib from 'node:zlib';
import t, { type Test } from 'tap';
import { brotliOnce, gzipOnce } from '../../../lib/worker/one-call.js';

const TEXT = Buffer.from('<p>baton keeps one stream per coding and window size and starts it over after each body.</p>\n'.repeat(900));
const gzipFor = (windowBits: number) => ({ level: 5, windowBits, memLevel: Math.max(1, windowBits - 7) });
const c = zlib.constants;
const brotliFor = (lgwin: number) => ({ [c.BROTLI_PARAM_QUALITY]: 5, [c.BROTLI_PARAM_MODE]: c.BROTLI_MODE_TEXT, [c.BROTLI_PARAM_LGWIN]: lgwin });

/** Every window size and body size, `rounds` times over, each body compared with what a new stream makes of it. */
function compareAll(t: Test, rounds: number, windows: number[], kept: (body: Buffer, w: number) => Buffer, fresh: (body: Buffer, w: number) => Buffer): void {
  const random = crypto.randomBytes(70_000);
  let checked = 0;
  for (let round = 0; round < rounds; round++) {
    for (const w of windows) {
      for (const size of [0, 1, 100, 1000, 8192, 20_000, 65_536]) {
        for (const source of [TEXT, random]) {
          const body = source.subarray(0, size);
          if (!kept(body, w).equals(fresh(body, w))) t.fail(`window ${w}, ${size} bytes, round ${round}`);
          checked++;
        }
      }
    }
  }
  t.equal(checked, rounds * windows.length * 7 * 2, 'every body compared');
}

t.test('each gzip body is byte for byte what zlib.gzipSync makes of it, body after body, across window sizes', async (t) => {
  compareAll(t, 3, [15, 9, 12, 14, 13, 10, 11], (b, w) => gzipOnce(b, gzipFor(w)), (b, w) => zlib.gzipSync(b, gzipFor(w)));
});

t.test('each brotli body is byte for byte what zlib.brotliCompressSync makes of it with the same parameters: starting over keeps them', async (t) => {
  compareAll(t, 2, [16, 10, 13, 12, 14, 11, 15], (b, w) => brotliOnce(b, brotliFor(w)), (b, w) => zlib.brotliCompressSync(b, { params: brotliFor(w) }));
  // Node's own reset of a brotli stream falls back to quality 11, whose output for this page is smaller: the same
  // size as quality 5's shows the parameters held.
  const page = TEXT.subarray(0, 30_000);
  const q11 = zlib.brotliCompressSync(page).length;
  const q5 = zlib.brotliCompressSync(page, { params: brotliFor(15) }).length;
  t.not(q11, q5, 'quality 11 and 5 differ on this page');
  for (let i = 0; i < 3; i++) t.equal(brotliOnce(page, brotliFor(15)).length, q5, `body ${i + 1}: quality 5`);
});

t.test('incompressible bodies whose output fills the scratch buffer exactly, or several times, come out whole', async (t) => {
  // Stored blocks: 16 361 random bytes make exactly 16 384 bytes of gzip, the size of the scratch buffer.
  const random = crypto.randomBytes(60_000);
  const sizes = [];
  for (let n = 16_340; n <= 16_400; n++) sizes.push(n);
  sizes.push(32_768, 49_153, 60_000);
  for (const n of sizes) {
    const body = random.subarray(0, n);
    const made = gzipOnce(body, gzipFor(15));
    if (!zlib.gunzipSync(made).equals(body) || !made.equals(zlib.gzipSync(body, gzipFor(15)))) t.fail(`gzip, ${n} bytes`);
    const br = brotliOnce(body, brotliFor(16));
    if (!zlib.brotliDecompressSync(br).equals(body)) t.fail(`brotli, ${n} bytes`);
  }
  t.ok(sizes.some((n) => zlib.gzipSync(random.subarray(0, n), gzipFor(15)).length === 16 * 1024), 'one gzip output is exactly the scratch size');
});

t.test('a result is its own copy: the next call does not change the bytes of the last one', async (t) => {
  const a = gzipOnce(TEXT.subarray(0, 5000), gzipFor(13));
  const b = brotliOnce(TEXT.subarray(0, 5000), brotliFor(13));
  const [beforeA, beforeB] = [Buffer.from(a), Buffer.from(b)];
  gzipOnce(crypto.randomBytes(5000), gzipFor(13));
  brotliOnce(crypto.randomBytes(5000), brotliFor(13));
  t.ok(a.equals(beforeA) && b.equals(beforeB));
  t.ok(zlib.gunzipSync(a).equals(TEXT.subarray(0, 5000)));
  t.ok(zlib.brotliDecompressSync(b).equals(TEXT.subarray(0, 5000)));
});
