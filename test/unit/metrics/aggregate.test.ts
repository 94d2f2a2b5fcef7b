import t from 'tap';
import { Aggregator } from '../../../lib/metrics/aggregate.js';
import { CONNECTIONS, REQUESTS, REQUEST_DURATION } from '../../../lib/metrics/families.js';
import { Recorder } from '../../../lib/metrics/recorder.js';
import type { MetricsSnapshot } from '../../../lib/metrics/snapshot.js';

const ROUTES = [{ host: null, path: '/', upstream: 'app' }];
const OK = 'route="*/",upstream="app",status_class="2xx"';
const SERIES = 'route="*/",upstream="app"';
const HTTP1 = 'protocol="http1",state="active"';

/** A worker's recorder and a way to take its snapshot as the master receives it. */
function worker(): { r: Recorder; push: (open?: number) => MetricsSnapshot } {
  const r = new Recorder(ROUTES);
  return { r, push: (open = 0) => JSON.parse(JSON.stringify(r.snapshot({ http1: open, h2: 0, websocket: 0 }, false))) as MetricsSnapshot };
}

const requests = (a: Aggregator<unknown>) => a.totals().counter(REQUESTS.name).get(OK) ?? 0;

t.test('counters are summed over the live workers', async (t) => {
  const a = new Aggregator<number>();
  const w1 = worker();
  const w2 = worker();
  for (let i = 0; i < 3; i++) w1.r.request(0, 200, 1, 1);
  for (let i = 0; i < 4; i++) w2.r.request(0, 200, 1, 1);
  a.update(1, w1.push());
  a.update(2, w2.push());
  t.equal(requests(a), 7);
  t.equal(a.live, 2);
});

t.test('a newer snapshot of the same worker replaces the older one (counters are cumulative)', async (t) => {
  const a = new Aggregator<number>();
  const w = worker();
  w.r.request(0, 200, 1, 1);
  a.update(1, w.push());
  w.r.request(0, 200, 1, 1);
  a.update(1, w.push());
  t.equal(requests(a), 2);
});

t.test('counters survive a worker exit: its last snapshot joins the retired total', async (t) => {
  const a = new Aggregator<number>();
  const w1 = worker();
  const w2 = worker();
  for (let i = 0; i < 5; i++) w1.r.request(0, 200, 1, 1);
  w2.r.request(0, 200, 1, 1);
  a.update(1, w1.push(2));
  a.update(2, w2.push(1));
  a.exit(1);
  t.equal(requests(a), 6, 'nothing went backwards');
  t.equal(a.totals().gauge(CONNECTIONS.name).get(HTTP1), 1, 'the exited worker\'s connections are gone');
  // A replacement starts from zero; totals keep growing.
  const w3 = worker();
  w3.r.request(0, 200, 1, 1);
  a.update(3, w3.push());
  t.equal(requests(a), 7);
  a.exit(2);
  a.exit(3);
  t.equal(requests(a), 7, 'a whole generation gone, totals intact');
  t.equal(a.live, 0);
  t.equal(a.totals().gauge(CONNECTIONS.name).size, 0);
});

t.test('a snapshot that arrives after its worker\'s exit adds only what is new', async (t) => {
  const a = new Aggregator<number>();
  const w = worker();
  w.r.request(0, 200, 1, 1);
  a.update(1, w.push());
  a.exit(1);
  w.r.request(0, 200, 1, 1);
  w.r.request(0, 200, 1, 1);
  a.update(1, w.push(4));
  t.equal(requests(a), 3);
  t.equal(a.live, 0, 'it does not come back to life');
  t.equal(a.totals().gauge(CONNECTIONS.name).get(HTTP1), undefined, 'and its gauges do not count');
  a.exit(1);
  t.equal(requests(a), 3, 'a second exit changes nothing');
});

t.test('a worker that exits before its first push leaves the totals as they were', async (t) => {
  const a = new Aggregator<number>();
  a.exit(9);
  t.equal(requests(a), 0);
  t.equal(a.totals().counters.size, 0);
});

t.test('histograms of different workers merge bucket by bucket, with sums added', async (t) => {
  const a = new Aggregator<number>();
  const w1 = worker();
  const w2 = worker();
  w1.r.request(0, 200, 3, 1);
  w2.r.request(0, 200, 3, 1);
  w2.r.request(0, 200, 200_000, 1);
  a.update(1, w1.push());
  a.update(2, w2.push());
  a.exit(1);
  const h = a.totals().histogram(REQUEST_DURATION.name).get(SERIES)!;
  const mine = w2.push().histograms[REQUEST_DURATION.name]![SERIES]!;
  t.equal(h.buckets.reduce((x, y) => x + y, 0), 3);
  t.equal(h.buckets.at(-1), 1, '+Inf');
  t.equal(h.buckets[2], mine.buckets[2]! + 1, 'the 3 ms bucket holds both workers\' observations');
  t.ok(Math.abs(h.sum - 200.006) < 1e-9);
});

t.test('histograms with other bounds (a worker running other code) are not merged into the series', async (t) => {
  const a = new Aggregator<number>();
  const w = worker();
  w.r.request(0, 200, 3, 1);
  a.update(1, w.push());
  a.update(2, { counters: {}, gauges: {}, histograms: { [REQUEST_DURATION.name]: { [SERIES]: { buckets: [1, 1], sum: 1 } } } });
  t.equal(a.totals().histogram(REQUEST_DURATION.name).get(SERIES)!.buckets.reduce((x, y) => x + y, 0), 1);
});

t.test('messages that are not snapshots, and values that are not numbers, are ignored', async (t) => {
  const a = new Aggregator<number>();
  a.update(1, undefined);
  a.update(1, { counters: [] });
  a.update(2, { counters: { [REQUESTS.name]: { [OK]: 'many', other: Infinity, good: 2 } }, gauges: {}, histograms: { x: { y: { buckets: ['a'], sum: 1 } } } });
  const totals = a.totals();
  t.same([...totals.counter(REQUESTS.name)], [['good', 2]]);
  t.equal(totals.histogram('x').size, 0);
});

t.test('the retired total is not disturbed by reading the totals', async (t) => {
  const a = new Aggregator<number>();
  const w = worker();
  w.r.request(0, 200, 1, 1);
  a.update(1, w.push());
  a.exit(1);
  a.totals().counters.get(REQUESTS.name)!.set(OK, 1000);
  t.equal(requests(a), 1);
});
