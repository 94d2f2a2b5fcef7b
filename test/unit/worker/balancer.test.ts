/** @module Balancers: weighted distribution, smoothness, least connections, down targets, candidate order. */
import t from 'tap';
import { createBalancer, fallbacks, type BalancedTarget } from '../../../lib/worker/upstream/balancer.js';

const targets = (...weights: number[]): BalancedTarget[] => weights.map((weight, i) => ({ weight, inflight: 0, downUntil: 0, maxConnections: 0, url: `http://10.0.0.${i + 1}:80` }));
const NOW = 1_000_000;

function counts(pick: () => number, n: number, size: number): number[] {
  const c = new Array<number>(size).fill(0);
  for (let i = 0; i < n; i++) c[pick()]!++;
  return c;
}

t.test('round robin follows the weights exactly over a cycle', async (t) => {
  const ts = targets(5, 1, 1);
  const b = createBalancer('round_robin', ts);
  t.strictSame(counts(() => b.pick(NOW), 700, 3), [500, 100, 100]);
});

t.test('round robin is smooth: weights 5,1,1 interleave instead of bursting', async (t) => {
  const b = createBalancer('round_robin', targets(5, 1, 1));
  t.strictSame(Array.from({ length: 7 }, () => b.pick(NOW)), [0, 0, 1, 0, 2, 0, 0]);
});

t.test('round robin with equal weights alternates', async (t) => {
  const b = createBalancer('round_robin', targets(1, 1));
  t.strictSame(Array.from({ length: 4 }, () => b.pick(NOW)), [0, 1, 0, 1]);
});

t.test('random follows the weights statistically', async (t) => {
  const b = createBalancer('random', targets(3, 1));
  const c = counts(() => b.pick(NOW), 20_000, 2);
  t.ok(Math.abs(c[0]! / 20_000 - 0.75) < 0.03, `~75% on the weight-3 target, got ${c[0]}`);
});

t.test('least_conn picks the target with the fewest in-flight requests', async (t) => {
  const ts = targets(1, 1, 1);
  ts[0]!.inflight = 5;
  ts[1]!.inflight = 2;
  ts[2]!.inflight = 7;
  t.equal(createBalancer('least_conn', ts).pick(NOW), 1);
});

t.test('least_conn weighs in-flight counts by weight', async (t) => {
  const ts = targets(1, 4);
  ts[0]!.inflight = 2; // 2 per weight unit
  ts[1]!.inflight = 4; // 1 per weight unit
  t.equal(createBalancer('least_conn', ts).pick(NOW), 1);
});

t.test('least_conn breaks ties round robin', async (t) => {
  const b = createBalancer('least_conn', targets(1, 1, 1));
  t.strictSame(counts(() => b.pick(NOW), 300, 3), [100, 100, 100]);
});

t.test('least_conn tracks load as requests start and end', async (t) => {
  const ts = targets(1, 1);
  const b = createBalancer('least_conn', ts);
  for (let i = 0; i < 10; i++) ts[b.pick(NOW)]!.inflight++;
  t.strictSame(ts.map((x) => x.inflight), [5, 5]);
  ts[0]!.inflight -= 3;
  t.equal(b.pick(NOW), 0);
});

for (const kind of ['round_robin', 'least_conn', 'random'] as const) {
  t.test(`${kind} skips a target marked down while another is up`, async (t) => {
    const ts = targets(1, 1, 1);
    ts[1]!.downUntil = NOW + 1;
    const b = createBalancer(kind, ts);
    t.equal(counts(() => b.pick(NOW), 90, 3)[1], 0);
    t.ok(counts(() => b.pick(NOW + 2), 90, 3)[1]! > 0, 'and uses it again once its down period is over');
  });

  t.test(`${kind} answers -1 when every target is down, so the request fails at once instead of waiting`, async (t) => {
    const ts = targets(1, 1);
    for (const x of ts) x.downUntil = NOW + 1;
    t.equal(createBalancer(kind, ts).pick(NOW), -1);
    const one = targets(1);
    one[0]!.downUntil = NOW + 1;
    t.equal(createBalancer(kind, one).pick(NOW), -1, 'a single target too');
    t.not(createBalancer(kind, ts).pick(NOW + 2), -1, 'and picks again once the down period is over');
  });
}

t.test('fallbacks follow the ring after the first pick and leave out targets marked down', async (t) => {
  const ts = targets(1, 1, 1, 1);
  t.strictSame(fallbacks(ts, 2, NOW), [3, 0, 1]);
  ts[3]!.downUntil = NOW + 1;
  t.strictSame(fallbacks(ts, 2, NOW), [0, 1]);
  t.strictSame(fallbacks(targets(1), 0, NOW), []);
});
