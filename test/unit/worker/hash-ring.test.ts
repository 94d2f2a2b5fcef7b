/** @module balance: hash — the consistent-hash ring: stickiness, spread, weights, and how few keys move. */
import t from 'tap';
import { createBalancer, type BalancedTarget } from '../../../lib/worker/upstream/balancer.js';
import { hash32, HashRing } from '../../../lib/worker/upstream/hash-ring.js';
import { hashKeyOf } from '../../../lib/worker/upstream/hash-key.js';

const NOW = 1_000_000;
const KEYS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

function targets(weights: number[], hosts = weights.map((_, i) => i + 1)): BalancedTarget[] {
  return weights.map((weight, i) => ({ weight, inflight: 0, downUntil: 0, maxConnections: 0, url: `http://10.0.0.${hosts[i]}:8080` }));
}

/** key → the URL it goes to. */
function mapping(ts: BalancedTarget[]): Map<string, string> {
  const b = createBalancer('hash', ts);
  return new Map(KEYS.map((k) => [k, ts[b.pick(NOW, k)]!.url]));
}

function shares(m: Map<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const url of m.values()) out.set(url, (out.get(url) ?? 0) + 1 / m.size);
  return out;
}

t.test('the hash spreads similar keys (paths differing in one character) evenly', async (t) => {
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) buckets[hash32(`/items/${i}`) >>> 28]!++;
  t.strictSame(buckets.filter((n) => n < 800 || n > 1200), [], `each sixteenth of the hash space holds 1000 ± 200 of 16000 keys: ${buckets.join(' ')}`);
});

t.test('the same key goes to the same target, pick after pick', async (t) => {
  const b = createBalancer('hash', targets([1, 1, 1]));
  for (const key of ['a', 'session=42', '10.1.2.3']) {
    const first = b.pick(NOW, key);
    t.ok(Array.from({ length: 50 }, () => b.pick(NOW, key)).every((i) => i === first), `${key} sticks to target ${first}`);
  }
});

t.test('keys spread evenly over equal targets (5 targets: each gets 20% ± 5%)', async (t) => {
  for (const [url, share] of shares(mapping(targets([1, 1, 1, 1, 1])))) t.ok(share > 0.15 && share < 0.25, `${url}: ${(share * 100).toFixed(1)}%`);
});

t.test('weights scale a target\'s share (weights 1 and 3: 25% and 75% ± 5%)', async (t) => {
  const s = shares(mapping(targets([1, 3])));
  const light = s.get('http://10.0.0.1:8080')!;
  t.ok(light > 0.2 && light < 0.3, `weight 1: ${(light * 100).toFixed(1)}%`);
});

t.test('removing one of 5 targets moves about 1/5 of the keys, and only the keys it had', async (t) => {
  const before = mapping(targets([1, 1, 1, 1, 1]));
  const after = mapping(targets([1, 1, 1, 1], [1, 2, 4, 5])); // 10.0.0.3 removed from the config
  let moved = 0;
  for (const [key, url] of before) {
    if (after.get(key) === url) continue;
    moved++;
    if (url !== 'http://10.0.0.3:8080') t.fail(`${key} moved from ${url}, which was not removed`);
  }
  const fraction = moved / KEYS.length;
  t.ok(fraction > 0.15 && fraction < 0.25, `${(fraction * 100).toFixed(1)}% of the keys moved`);
});

t.test('a target taken out (down or full) moves only its own keys, and they come back with it', async (t) => {
  const ts = targets([1, 1, 1, 1]);
  const before = mapping(ts);
  ts[1]!.downUntil = NOW + 10_000;
  const down = mapping(ts);
  let moved = 0;
  for (const [key, url] of before) {
    if (down.get(key) === url) continue;
    moved++;
    if (url !== ts[1]!.url) t.fail(`${key} moved from ${url}, which is up`);
  }
  t.ok(moved > 0.2 * KEYS.length && moved < 0.3 * KEYS.length, `${moved} keys moved, about a quarter`);
  ts[1]!.downUntil = 0;
  t.strictSame(mapping(ts), before, 'every key is back where it was');
  (ts[2] as { maxConnections: number }).maxConnections = 1;
  ts[2]!.inflight = 1;
  const full = mapping(ts);
  for (const [key, url] of before) if (full.get(key) !== url && url !== ts[2]!.url) t.fail(`${key} moved from ${url}, which is not full`);
});

t.test('the ring depends on the targets, not on their order in the file', async (t) => {
  const a = targets([1, 2, 1]);
  const b = [a[2]!, a[0]!, a[1]!].map((x) => ({ ...x }));
  t.strictSame(mapping(b), mapping(a));
});

t.test('the fallbacks of a key are where its keys go when its target is out', async (t) => {
  const ts = targets([1, 1, 1, 1]);
  const b = createBalancer('hash', ts);
  const wrong: string[] = [];
  for (const key of KEYS.slice(0, 200)) {
    const first = b.pick(NOW, key);
    const order = b.fallbacks(first, NOW, key);
    ts[first]!.downUntil = NOW + 1;
    const moved = b.pick(NOW, key);
    ts[first]!.downUntil = 0;
    if (new Set(order).size !== 3 || order.includes(first) || moved !== order[0]) wrong.push(`${key}: ${first} then ${order.join(',')}, ring says ${moved}`);
  }
  t.strictSame(wrong, [], 'for 200 keys: every other target once, the first one where the ring sends the key');
});

t.test('requests without a key are spread (round robin), and every target down gives -1', async (t) => {
  const ts = targets([1, 1]);
  const b = createBalancer('hash', ts);
  t.strictSame([b.pick(NOW, ''), b.pick(NOW, ''), b.pick(NOW), b.pick(NOW)], [0, 1, 0, 1]);
  for (const x of ts) x.downUntil = NOW + 1;
  t.equal(b.pick(NOW, 'k'), -1);
});

t.test('huge weights are scaled to a bounded ring', async (t) => {
  const ring = new HashRing(targets([1_000_000, 3_000_000]), createBalancer('round_robin', []));
  const s = shares(new Map(KEYS.map((k) => [k, String(ring.pick(NOW, k))])));
  t.ok(s.get('0')! > 0.2 && s.get('0')! < 0.3, `weight 1e6 of 4e6: ${(s.get('0')! * 100).toFixed(1)}%`);
});

t.test('hash_key reads the client address, the path without its query, a header, a cookie', async (t) => {
  const raw = ['Host', 'h', 'X-Tenant', 'acme', 'x-tenant', 'beta', 'Cookie', 'a=1; session=s42 ; b=2', 'cookie', 'late=3'];
  t.equal(hashKeyOf({ kind: 'client_ip' }, raw, '10.1.2.3', '/x'), '10.1.2.3');
  t.equal(hashKeyOf({ kind: 'path' }, raw, 'c', '/items/7?page=2'), '/items/7');
  t.equal(hashKeyOf({ kind: 'header', name: 'x-tenant' }, raw, 'c', '/'), 'acme, beta');
  t.equal(hashKeyOf({ kind: 'header', name: 'x-none' }, raw, 'c', '/'), '');
  t.equal(hashKeyOf({ kind: 'cookie', name: 'session' }, raw, 'c', '/'), 's42');
  t.equal(hashKeyOf({ kind: 'cookie', name: 'late' }, raw, 'c', '/'), '3', 'a second Cookie field (HTTP/2 splits them)');
  t.equal(hashKeyOf({ kind: 'cookie', name: 'sess' }, raw, 'c', '/'), '');
});
