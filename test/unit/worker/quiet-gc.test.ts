/** @module The one full collection a worker makes when it goes quiet after work. */
import t from 'tap';
import { QUIET_MS, QuietCollector, exposedGc } from '../../../lib/worker/quiet-gc.js';

function collector(quietMs = QUIET_MS) {
  const calls: number[] = [];
  let now = 0;
  const q = new QuietCollector(() => calls.push(now), quietMs);
  return { calls, tick: (activity: number, at: number) => ((now = at), q.tick(activity, at)) };
}

t.test('a worker collects once, after its activity count has stood still for the quiet time', async (t) => {
  const { calls, tick } = collector(6000);
  t.notOk(tick(10, 0), 'the first count is work seen');
  t.notOk(tick(10, 1000));
  t.notOk(tick(10, 5999), 'quiet for less than the quiet time');
  t.ok(tick(10, 6000), 'quiet for the quiet time: collects');
  t.same(calls, [6000]);
  for (let at = 7000; at <= 60_000; at += 1000) tick(10, at);
  t.same(calls, [6000], 'no second collection while nothing happens');
});

t.test('work keeps the collection off, and each quiet spell after work gets its own', async (t) => {
  const { calls, tick } = collector(6000);
  let count = 0;
  for (let at = 0; at <= 30_000; at += 1000) tick(++count, at);
  t.same(calls, [], 'never while the count moves, however long');
  for (let at = 31_000; at <= 40_000; at += 1000) tick(count, at);
  t.same(calls, [36_000], 'six seconds after the last change (seen at 30 s)');
  tick(++count, 41_000);
  for (let at = 42_000; at <= 50_000; at += 1000) tick(count, at);
  t.same(calls, [36_000, 47_000], 'another burst, another collection');
});

t.test('a count that goes down (the recorder reset) is work like any other change', async (t) => {
  const { calls, tick } = collector(6000);
  tick(5, 0);
  tick(5, 6000);
  tick(0, 7000);
  tick(0, 12_999);
  t.same(calls, [6000]);
  tick(0, 13_000);
  t.same(calls, [6000, 13_000]);
});

t.test('exposedGc calls the global gc when the process has one, and is null without it', async (t) => {
  const g = globalThis as { gc?: unknown };
  const had = Object.getOwnPropertyDescriptor(globalThis, 'gc');
  t.teardown(() => {
    if (had) Object.defineProperty(globalThis, 'gc', had);
    else delete g.gc;
  });
  const calls: unknown[] = [];
  Object.defineProperty(globalThis, 'gc', { value: (o: unknown) => calls.push(o), configurable: true, writable: true });
  const gc = exposedGc();
  t.ok(gc);
  gc!();
  t.same(calls, [{ type: 'major', execution: 'sync', flavor: 'last-resort' }], "V8's last-resort collection, which also releases its pooled pages");
  delete g.gc;
  t.equal(exposedGc(), null);
});
