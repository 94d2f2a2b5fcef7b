import t from 'tap';
import {
  CONNECTIONS, HANDOFFS, HANDOFFS_RECEIVED, HANDOFF_FAILURES, LATENCY_BUCKETS, REQUESTS, REQUEST_DURATION, UPSTREAM_FAILURES, UPSTREAM_LATENCY,
  WEBSOCKET_TUNNELS,
} from '../../../lib/metrics/families.js';
import { bucketIndex, Recorder, routeLabel, statusClassIndex } from '../../../lib/metrics/recorder.js';

const ROUTES = [
  { host: null, path: '/api/', upstream: 'app' },
  { host: 'example.com', path: '/', upstream: 'app' },
  { host: null, path: '/healthz', upstream: null },
  { host: null, path: '/old/', upstream: 'legacy' },
];
const NO_CONN = { http1: 0, h2: 0, websocket: 0 };

t.test('route labels are the host (or *) followed by the path, as in the logs', async (t) => {
  t.equal(routeLabel(ROUTES[0]!), '*/api/');
  t.equal(routeLabel(ROUTES[1]!), 'example.com/');
});

t.test('status codes fall into their class; out-of-range codes are clamped', async (t) => {
  t.same([100, 101, 200, 204, 301, 404, 499, 502, 504].map(statusClassIndex), [0, 0, 1, 1, 2, 3, 3, 4, 4]);
  t.equal(statusClassIndex(0), 0);
  t.equal(statusClassIndex(999), 4);
});

t.test('an observation lands in the first bucket whose bound is >= the value (le is inclusive)', async (t) => {
  t.equal(bucketIndex([0.1, 1], 0), 0);
  t.equal(bucketIndex([0.1, 1], 0.1), 0);
  t.equal(bucketIndex([0.1, 1], 0.2), 1);
  t.equal(bucketIndex([0.1, 1], 1), 1);
  t.equal(bucketIndex([0.1, 1], 1.5), 2);
});

t.test('requests are counted by route, upstream and status class; unmatched ones under route "(none)"', async (t) => {
  const r = new Recorder(ROUTES);
  r.request(0, 200, 3, 2);
  r.request(0, 200, 4, 3);
  r.request(0, 502, 1, -1);
  r.request(2, 200, 0.1, -1);
  r.request(-1, 404, 0.2, -1);
  r.request(99, 404, 0.2, -1); // an index the recorder does not know: counted, under (none)
  const s = r.snapshot(NO_CONN, false);
  t.same(s.counters[REQUESTS.name], {
    'route="*/api/",upstream="app",status_class="2xx"': 2,
    'route="*/api/",upstream="app",status_class="5xx"': 1,
    'route="*/healthz",upstream="(none)",status_class="2xx"': 1,
    'route="(none)",upstream="(none)",status_class="4xx"': 2,
  });
});

t.test('request durations and upstream latencies go into fixed buckets, with sums in seconds', async (t) => {
  const r = new Recorder(ROUTES);
  r.request(0, 200, 3, 2); // 3 ms → le=0.005; upstream 2 ms → le=0.0025
  r.request(1, 200, 2000, 1500); // 2 s → le=2.5; upstream 1.5 s → le=2.5
  r.request(0, 200, 120_000, -1); // 2 min → +Inf; no upstream answer
  const s = r.snapshot(NO_CONN, false);
  const api = s.histograms[REQUEST_DURATION.name]!['route="*/api/",upstream="app"']!;
  t.equal(api.buckets.length, LATENCY_BUCKETS.length + 1);
  t.equal(api.buckets[LATENCY_BUCKETS.indexOf(0.005)], 1);
  t.equal(api.buckets[LATENCY_BUCKETS.length], 1, '+Inf bucket');
  t.equal(api.buckets.reduce((a, b) => a + b, 0), 2);
  t.ok(Math.abs(api.sum - 120.003) < 1e-9);
  const up = s.histograms[UPSTREAM_LATENCY.name]!['upstream="app"']!;
  t.equal(up.buckets.reduce((a, b) => a + b, 0), 2, 'both routes of upstream app, not the one without an answer');
  t.equal(up.buckets[LATENCY_BUCKETS.indexOf(0.0025)], 1);
  t.equal(up.buckets[LATENCY_BUCKETS.indexOf(2.5)], 1);
  t.notOk(s.histograms[REQUEST_DURATION.name]!['route="*/old/",upstream="legacy"'], 'series without observations are not sent');
});

t.test('upstream failures are counted by upstream, kind and code; routes without an upstream count nothing', async (t) => {
  const r = new Recorder(ROUTES);
  r.upstreamFailure(0, 'connect', 'ECONNREFUSED');
  r.upstreamFailure(1, 'connect', 'ECONNREFUSED');
  r.upstreamFailure(3, 'timeout', 'UND_ERR_HEADERS_TIMEOUT');
  r.upstreamFailure(2, 'reset', 'ECONNRESET');
  r.upstreamFailure(-1, 'reset', 'ECONNRESET');
  t.same(r.snapshot(NO_CONN, false).counters[UPSTREAM_FAILURES.name], {
    'upstream="app",kind="connect",code="ECONNREFUSED"': 2,
    'upstream="legacy",kind="timeout",code="UND_ERR_HEADERS_TIMEOUT"': 1,
  });
});

t.test('websocket tunnels are counted apart from requests, by handshake status class', async (t) => {
  const r = new Recorder(ROUTES);
  r.tunnel(0, 101);
  r.tunnel(0, 502);
  const s = r.snapshot(NO_CONN, false);
  t.same(s.counters[WEBSOCKET_TUNNELS.name], {
    'route="*/api/",upstream="app",status_class="1xx"': 1,
    'route="*/api/",upstream="app",status_class="5xx"': 1,
  });
  t.same(s.counters[REQUESTS.name], {});
});

t.test('hand-offs are counted by kind, given and received apart, and failed ones by kind and reason', async (t) => {
  const r = new Recorder(ROUTES);
  r.handoff('http1');
  r.handoff('http1');
  r.handoff('websocket');
  r.handoffReceived('websocket');
  r.handoffFailure('http1', 'no_receiver');
  r.handoffFailure('websocket', 'unflushed');
  r.handoffFailure('http1', 'no_receiver');
  const c = r.snapshot(NO_CONN, false).counters;
  t.same(c[HANDOFFS.name], { 'kind="http1"': 2, 'kind="websocket"': 1 });
  t.same(c[HANDOFFS_RECEIVED.name], { 'kind="websocket"': 1 });
  t.same(c[HANDOFF_FAILURES.name], { 'kind="http1",reason="no_receiver"': 2, 'kind="websocket",reason="unflushed"': 1 });
});

t.test('open connections are reported by protocol under the worker state', async (t) => {
  const r = new Recorder(ROUTES);
  t.same(r.snapshot({ http1: 3, h2: 1, websocket: 2 }, false).gauges[CONNECTIONS.name], {
    'protocol="http1",state="active"': 3, 'protocol="h2",state="active"': 1, 'protocol="websocket",state="active"': 2,
  });
  t.same(r.snapshot({ http1: 1, h2: 0, websocket: 0 }, true).gauges[CONNECTIONS.name], {
    'protocol="http1",state="draining"': 1, 'protocol="h2",state="draining"': 0, 'protocol="websocket",state="draining"': 0,
  });
});

t.test('snapshots are cumulative and survive JSON (the IPC channel)', async (t) => {
  const r = new Recorder(ROUTES);
  r.request(0, 200, 1, 1);
  const first = JSON.parse(JSON.stringify(r.snapshot(NO_CONN, false)));
  r.request(0, 200, 1, 1);
  const second = JSON.parse(JSON.stringify(r.snapshot(NO_CONN, false)));
  t.equal(first.counters[REQUESTS.name]['route="*/api/",upstream="app",status_class="2xx"'], 1);
  t.equal(second.counters[REQUESTS.name]['route="*/api/",upstream="app",status_class="2xx"'], 2);
});

t.test('an unconfigured recorder counts everything under route "(none)"', async (t) => {
  const r = new Recorder();
  r.request(5, 200, 1, 1);
  r.upstreamFailure(5, 'connect', 'ECONNREFUSED');
  const s = r.snapshot(NO_CONN, false);
  t.same(s.counters[REQUESTS.name], { 'route="(none)",upstream="(none)",status_class="2xx"': 1 });
  t.same(s.counters[UPSTREAM_FAILURES.name], {});
});
