/** @module Duration parsing. */
import t from 'tap';
import { parseDuration } from '../../../lib/util/duration.js';

t.test('durations with a unit become milliseconds', async (t) => {
  const cases: [string, number][] = [['250ms', 250], ['30s', 30_000], ['1.5s', 1_500], ['1.1s', 1_100], ['5m', 300_000], ['1h', 3_600_000], ['0s', 0]];
  for (const [text, ms] of cases) t.strictSame(parseDuration(text), { ok: true, value: ms }, text);
});

t.test('a bare number is an error, because the unit would be a guess', async (t) => {
  t.strictSame(parseDuration(30), { ok: false, message: 'expected a duration like 250ms, 30s, 5m or 1h, got 30' });
  t.strictSame(parseDuration('30'), { ok: false, message: 'expected a duration like 250ms, 30s, 5m or 1h, got "30"' });
});

t.test('unknown units, spaces, signs and upper case are errors', async (t) => {
  for (const text of ['5d', '5 s', '-5s', '5S', 's', '', '1.s', '.5s', '1e3ms']) {
    t.match(parseDuration(text), { ok: false, message: /^expected a duration like/ }, JSON.stringify(text));
  }
});

t.test('a fraction of a millisecond is an error', async (t) => {
  t.strictSame(parseDuration('1.5ms'), { ok: false, message: 'expected a whole number of milliseconds, got "1.5ms"' });
});

t.test('a duration longer than a Node timer can hold is an error', async (t) => {
  t.strictSame(parseDuration('596h'), { ok: true, value: 596 * 3_600_000 });
  t.strictSame(parseDuration('597h'), { ok: false, message: 'expected a duration of at most 596h, got "597h"' });
});
