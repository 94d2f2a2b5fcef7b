import crypto from 'node:crypto';
import zlib from 'node:zlib';
import t from 'tap';
import { gzipOnce } from '../../../lib/worker/gzip-once.js';

const TEXT = Buffer.from('<p>baton keeps one gzip stream per window size and resets it after each body.</p>\n'.repeat(900));
const optionsFor = (windowBits: number) => ({ level: 5, windowBits, memLevel: Math.max(1, windowBits - 7) });

t.test('each body is byte for byte what zlib.gzipSync makes of it, body after body, across window sizes', async (t) => {
  const random = crypto.randomBytes(70_000);
  let checked = 0;
  for (let round = 0; round < 3; round++) {
    for (const windowBits of [15, 9, 12, 14, 13, 10, 11]) {
      for (const size of [0, 1, 100, 1000, 8192, 20_000, 65_536]) {
        for (const source of [TEXT, random]) {
          const body = source.subarray(0, size);
          const made = gzipOnce(body, optionsFor(windowBits));
          if (!made.equals(zlib.gzipSync(body, optionsFor(windowBits)))) t.fail(`window ${windowBits}, ${size} bytes, round ${round}`);
          checked++;
        }
      }
    }
  }
  t.equal(checked, 3 * 7 * 7 * 2, 'every body compared');
});

t.test('incompressible bodies whose output fills the scratch buffer exactly, or several times, come out whole', async (t) => {
  // Stored blocks: 16 361 random bytes make exactly 16 384 bytes of gzip, the size of the scratch buffer.
  const random = crypto.randomBytes(60_000);
  const sizes = [];
  for (let n = 16_340; n <= 16_400; n++) sizes.push(n);
  sizes.push(32_768, 49_153, 60_000);
  for (const n of sizes) {
    const body = random.subarray(0, n);
    const made = gzipOnce(body, optionsFor(15));
    if (!zlib.gunzipSync(made).equals(body) || !made.equals(zlib.gzipSync(body, optionsFor(15)))) t.fail(`${n} bytes`);
  }
  t.ok(sizes.some((n) => zlib.gzipSync(random.subarray(0, n), optionsFor(15)).length === 16 * 1024), 'one output is exactly the scratch size');
});

t.test('a result is its own copy: the next call does not change the bytes of the last one', async (t) => {
  const a = gzipOnce(TEXT.subarray(0, 5000), optionsFor(13));
  const before = Buffer.from(a);
  gzipOnce(crypto.randomBytes(5000), optionsFor(13));
  t.ok(a.equals(before));
  t.ok(zlib.gunzipSync(a).equals(TEXT.subarray(0, 5000)));
});
