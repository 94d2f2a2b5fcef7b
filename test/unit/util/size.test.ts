/** @module Size parsing. */
import t from 'tap';
import { parseSize } from '../../../lib/util/size.js';

t.test('sizes become bytes, with units in powers of 1024 in any case and an optional b', async (t) => {
  const cases: [string | number, number][] = [
    [512, 512], ['512', 512], ['512b', 512], ['64k', 65_536], ['64K', 65_536], ['64kb', 65_536], ['64KB', 65_536],
    ['1m', 1_048_576], ['1.5m', 1_572_864], ['2g', 2_147_483_648], ['0', 0],
  ];
  for (const [input, bytes] of cases) t.strictSame(parseSize(input), { ok: true, value: bytes }, String(input));
});

t.test('unknown units, signs and spaces are errors', async (t) => {
  for (const input of ['64x', '1t', '-1k', '64 k', 'k', '', '1kib', -1]) {
    t.match(parseSize(input), { ok: false, message: /^expected a size like 512, 64k, 1m or 2g, got / }, String(input));
  }
});

t.test('a fraction of a byte is an error', async (t) => {
  t.strictSame(parseSize('1.5'), { ok: false, message: 'expected a whole number of bytes, got "1.5"' });
  t.strictSame(parseSize(0.5), { ok: false, message: 'expected a whole number of bytes, got 0.5' });
});
