/** @module The one collection a worker makes when it goes quiet after work. */
import t from 'tap';
import { QUIET_SHARE, QuietCollector, WORK_MS, exposedGc } from '../../../lib/worker/quiet-gc.js';

/** The quiet time of these tests (the worker's is QUIET_MS): the times below are written for it. */
const QUIET_MS = 6000;

/** A collector and a clock: `run(from, to, busyPerSecond)` ticks once a second, the loop busy that much each. */
function collector() {
  const calls: number[] = [];
  let busy = 0;
  let now = 0;
  const q = new QuietCollector(() => calls.push(now), QUIET_MS);
  const tick = (at: number) => ((now = at), q.tick(busy, at));
  const run = (from: number, to: number, busyPerSecond: number) => {
    for (let at = from; at <= to; at += 1000) {
      busy += busyPerSecond;
      tick(at);
    }
  };
  return { calls, tick, run, busy: () => busy };
}

t.test('after work, a worker collects once, when its event loop has been quiet for the quiet time', async (t) => {
  const { calls, tick, run } = collector();
  t.notOk(tick(0), 'the first tick only starts counting');
  run(1000, 10_000, 500);
  t.same(calls, [], 'never while the worker is busy');
  run(11_000, 15_000, 0);
  t.same(calls, [], 'quiet for less than the quiet time (the spell started at the last busy tick, 10 s)');
  run(16_000, 16_000, 0);
  t.same(calls, [16_000], 'quiet for the quiet time: collects');
  run(17_000, 21_000, 0);
  t.same(calls, [16_000]);
  run(22_000, 22_000, 0);
  t.same(calls, [16_000, 22_000], 'once more after another quiet time: V8 now sees the quiet alone');
  run(23_000, 120_000, 0);
  t.same(calls, [16_000, 22_000], 'then none while nothing happens');
});

t.test('the second collection waits for a quiet spell, and no work is needed for it', async (t) => {
  const { calls, run } = collector();
  run(0, 0, 0);
  run(1000, 2000, WORK_MS);
  run(3000, 8000, 0);
  t.same(calls, [8000]);
  run(9000, 9000, QUIET_MS * QUIET_SHARE + 1);
  run(10_000, 14_000, 0);
  t.same(calls, [8000], 'a busy tick started the spell again');
  run(15_000, 15_000, 0);
  t.same(calls, [8000, 15_000], 'the second, though less than WORK_MS was worked since the first');
  run(16_000, 100_000, 0);
  t.same(calls, [8000, 15_000]);
});

t.test('a little work (health checks) is quiet, but no reason for a collection by itself', async (t) => {
  const { calls, run, busy } = collector();
  run(0, 0, 0);
  run(1000, 2000, WORK_MS);
  const perSecond = (QUIET_MS * QUIET_SHARE) / (QUIET_MS / 1000);
  run(3000, 8000, perSecond);
  t.same(calls, [8000], 'busy at the quiet share does not keep the collection off');
  run(9000, 14_000, perSecond);
  t.same(calls, [8000, 14_000], 'the second one');
  const collectedAt = busy();
  let at = 15_000;
  while (busy() + perSecond - collectedAt < WORK_MS) run(at, at, perSecond), (at += 1000);
  t.equal(calls.length, 2, 'at the quiet share, no other collection while less than WORK_MS was worked since the last');
  for (let i = 0; i < 8 && calls.length === 2; i++) run(at, at, perSecond), (at += 1000);
  t.equal(calls.length, 3, 'WORK_MS worked: a collection follows within one quiet time');
});

t.test('busy over the quiet share starts the quiet spell again: a long download keeps the collection off', async (t) => {
  const { calls, run } = collector();
  run(0, 0, 0);
  run(1000, 3000, WORK_MS);
  run(4000, 8000, 0);
  t.same(calls, []);
  run(9000, 9000, QUIET_MS * QUIET_SHARE + 1);
  run(10_000, 14_000, 0);
  t.same(calls, [], 'a little more than the share at 9 s moved the spell');
  run(15_000, 15_000, 0);
  t.same(calls, [15_000]);
  run(16_000, 600_000, 100);
  t.same(calls, [15_000], 'ten minutes at a tenth of the loop: never quiet');
});

t.test('less than WORK_MS since the last collection: no collection, however quiet', async (t) => {
  const { calls, run } = collector();
  run(0, 0, 0);
  run(1000, 1000, WORK_MS - 1);
  run(2000, 60_000, 0);
  t.same(calls, []);
  run(61_000, 61_000, 1);
  t.same(calls, [61_000], 'one more ms makes WORK_MS, in a spell quiet since 1 s');
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

t.test("a worker's collector waits half a minute: shorter pauses are part of a load", async (t) => {
  const calls: number[] = [];
  const q = new QuietCollector(() => calls.push(1));
  const busy = 2 * WORK_MS + 300; // more than 1 % of 30 s: work, not quiet
  q.tick(0, 0);
  q.tick(busy, 1000);
  for (let at = 2000; at <= 30_000; at += 1000) q.tick(busy, at);
  t.same(calls, [], 'quiet for 29 s');
  q.tick(busy, 31_000);
  t.same(calls, [1], 'quiet for 30 s');
});
