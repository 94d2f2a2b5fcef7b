/** @module The one full collection a worker makes when it goes quiet after work. */
import t from 'tap';
import { QUIET_MS, QUIET_RATE, QuietCollector, WORK, exposedGc } from '../../../lib/worker/quiet-gc.js';

function collector(quietMs = QUIET_MS) {
  const calls: number[] = [];
  let now = 0;
  const q = new QuietCollector(() => calls.push(now), quietMs);
  return { calls, tick: (activity: number, at: number) => ((now = at), q.tick(activity, at)) };
}

/** One tick a second from `from` to `to` (inclusive) while the count grows by `perSecond`; returns the count. */
function run(tick: (a: number, at: number) => unknown, count: number, from: number, to: number, perSecond: number): number {
  for (let at = from; at <= to; at += 1000) tick((count += perSecond), at);
  return count;
}

t.test('after work, a worker collects once, when its count has stood still for the quiet time', async (t) => {
  const { calls, tick } = collector(6000);
  t.notOk(tick(0, 0), 'the first tick only starts counting');
  let n = run(tick, 0, 1000, 10_000, 500);
  t.same(calls, [], 'never while the worker is busy');
  n = run(tick, n, 11_000, 15_000, 0);
  t.same(calls, [], 'quiet for less than the quiet time (the spell started at the last busy tick, 10 s)');
  t.ok(tick(n, 16_000), 'quiet for the quiet time: collects');
  t.same(calls, [16_000]);
  run(tick, n, 17_000, 120_000, 0);
  t.same(calls, [16_000], 'no second collection while nothing happens');
});

t.test('a trickle of requests (health checks) is quiet, but no reason for a collection by itself', async (t) => {
  const { calls, tick } = collector(6000);
  tick(0, 0);
  let n = run(tick, 0, 1000, 5000, WORK);
  n = run(tick, n, 6000, 11_000, 1);
  t.same(calls, [11_000], 'one request a second does not keep the collection off');
  const collectedAt = n;
  let time = 12_000;
  while (n + QUIET_RATE - collectedAt < WORK) tick((n += QUIET_RATE), (time += 1000) - 1000);
  t.same(calls, [11_000], 'at QUIET_RATE, no other collection while less than WORK is done since the last');
  for (let i = 0; i < 8 && calls.length === 1; i++) tick((n += QUIET_RATE), (time += 1000));
  t.equal(calls.length, 2, 'WORK done: a collection follows within one quiet time');
});

t.test('work over the quiet rate starts the quiet spell again', async (t) => {
  const { calls, tick } = collector(6000);
  tick(0, 0);
  let n = run(tick, 0, 1000, 3000, WORK);
  n = run(tick, n, 4000, 8000, 0);
  t.same(calls, []);
  n += (QUIET_RATE * 6) + 1;
  tick(n, 9000);
  n = run(tick, n, 10_000, 14_000, 0);
  t.same(calls, [], 'a small burst at 9 s moved the spell');
  tick(n, 15_000);
  t.same(calls, [15_000]);
});

t.test('less than WORK since the last collection: no collection, however quiet', async (t) => {
  const { calls, tick } = collector(6000);
  tick(0, 0);
  let n = run(tick, 0, 1000, 1000, WORK - 1);
  n = run(tick, n, 2000, 60_000, 0);
  t.same(calls, []);
  n = run(tick, n, 61_000, 61_000, 1);
  t.same(calls, [61_000], 'one more request makes WORK, in a spell quiet since 1 s');
});

t.test('a count that goes down (the recorder counting again) starts over', async (t) => {
  const { calls, tick } = collector(6000);
  tick(0, 0);
  let n = run(tick, 0, 1000, 2000, WORK);
  run(tick, n, 3000, 8000, 0);
  t.same(calls, [8000]);
  tick(0, 9000);
  n = run(tick, 0, 10_000, 10_000, WORK);
  run(tick, n, 11_000, 17_000, 0);
  t.same(calls, [8000, 16_000], 'WORK is counted from the new zero');
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
