/** @module The master's daemon-wide token buckets, on a fake clock. */
import t from 'tap';
import { RateBuckets } from '../../../lib/master/rate-buckets.js';
import type { RateAsk } from '../../../lib/ipc/messages.js';

function clocked() {
  const clock = { now: 1_000_000 };
  return { clock, buckets: new RateBuckets(() => clock.now) };
}

const ask = (key: string, want: number, back = 0, id = '*/api 10/s burst 4 client_ip'): RateAsk => [id, 10, 5, key, want, back];

t.test('a new key starts with a full bucket; what is granted is taken; the wait names the next token', async (t) => {
  const { clock, buckets } = clocked();
  t.same(buckets.lease([ask('a', 3)]), [[3, 0]]);
  t.same(buckets.lease([ask('a', 3)]), [[2, 100]], 'only 2 left; the next token in 100 ms at 10/s');
  clock.now += 250;
  t.same(buckets.lease([ask('a', 5)]), [[2, 50]], 'refilled at the rate, whole tokens only');
  t.same(buckets.lease([ask('b', 1)]), [[1, 0]], 'another key has its own bucket');
});

t.test('tokens given back return to the bucket (up to its capacity); a debt is paid from the refill', async (t) => {
  const { clock, buckets } = clocked();
  buckets.lease([ask('a', 5)]);
  t.same(buckets.lease([ask('a', 0, 3)]), [[0, 0]]);
  t.same(buckets.lease([ask('a', 10)]), [[3, 100]], 'the 3 given back');
  t.same(buckets.lease([ask('a', 0, -4)]), [[0, 0]], 'spent while the master did not answer: owed');
  clock.now += 300;
  t.same(buckets.lease([ask('a', 1)]), [[0, 200]], 'the debt is paid before anything is granted again');
});

t.test('limits are kept apart by id, so a reload keeps a bucket only where the route and its spec are the same', async (t) => {
  const { buckets } = clocked();
  buckets.lease([ask('a', 5)]);
  t.same(buckets.lease([ask('a', 1)]), [[0, 100]], 'same id: the spent bucket');
  t.same(buckets.lease([ask('a', 1, 0, '*/api 20/s burst 4 client_ip')]), [[1, 0]], 'another id: a bucket of its own');
});

t.test('full buckets are forgotten; a snapshot carries the others to a new master', async (t) => {
  const { clock, buckets } = clocked();
  buckets.lease([ask('a', 5), ask('b', 1)]);
  clock.now += 150;
  buckets.sweep();
  t.equal(buckets.size, 1, 'b refilled (full: forgotten), a not yet');
  const snap = buckets.snapshot();
  const heir = clocked();
  heir.buckets.restore(JSON.parse(JSON.stringify(snap)));
  t.same(heir.buckets.lease([ask('a', 5)]), [[1, 50]], 'the new master goes on from the old one\'s level');
  clock.now += 10_000;
  buckets.sweep();
  t.equal(buckets.size, 0, 'refilled buckets are dropped');
  heir.buckets.restore([['x', -1, 0, 'junk'], 'junk', null]);
  t.pass('a malformed snapshot is ignored');
});

t.test('malformed asks get nothing', async (t) => {
  const { buckets } = clocked();
  t.same(buckets.lease([['id', 0, 5, 'k', 1, 0], ['id', 10, 0, 'k', 1, 0], 'junk' as unknown as RateAsk]), [[0, 1000], [0, 1000], [0, 1000]]);
});
