import http2 from 'node:http2';
import t, { type Test } from 'tap';
import { parseExposition, sampleValue, sumOf, type Sample } from '../helpers/metrics-parse.js';
import { Daemon, freePort, waitFor } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

const APP_OK = { route: '*/app/', upstream: 'app', status_class: '2xx' };
const NO_ROUTE = { route: '(none)', upstream: '(none)', status_class: '4xx' };
const DEAD = { route: '*/dead/', upstream: 'dead', status_class: '5xx' };
const REFUSED = { upstream: 'dead', kind: 'connect', code: 'ECONNREFUSED' };

async function scrape(d: Daemon): Promise<{ text: string; samples: Sample[]; types: Map<string, string> }> {
  const res = await fetch(`http://${await d.adminAddress()}/metrics`);
  const text = await res.text();
  const { families, samples } = parseExposition(text);
  return { text, samples, types: new Map([...families].map(([name, f]) => [name, f.type])) };
}

/** Scrape until `ready` holds (workers push once a second), at most 10 s. */
function scrapeUntil(d: Daemon, what: string, ready: (s: Sample[]) => boolean): Promise<Sample[]> {
  return waitFor(what, 10_000, async () => {
    const { samples } = await scrape(d);
    return ready(samples) ? samples : undefined;
  });
}

/** Every counter sample (and histogram bucket, sum and count) of `before` is still there in `after`, not smaller. */
function notBackwards(t: Test, before: Sample[], after: Sample[], types: Map<string, string>, when: string): void {
  const key = (s: Sample) => `${s.name}${JSON.stringify(s.labels)}`;
  const later = new Map(after.map((s) => [key(s), s.value]));
  let checked = 0;
  for (const s of before) {
    const type = types.get(s.family);
    if (type !== 'counter' && type !== 'histogram') continue;
    checked++;
    const v = later.get(key(s));
    if (v === undefined || v < s.value) t.fail(`${when}: ${key(s)} went from ${s.value} to ${v}`);
  }
  t.ok(checked > 0, `${when}: ${checked} counter samples did not go backwards`);
}

const times = async (n: number, fn: () => Promise<unknown>) => {
  for (let i = 0; i < n; i++) await fn();
};

t.test('/metrics counts requests by route, upstream and status class over all workers, and its counters survive a killed worker and a reload', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok\n'));
  const deadPort = await freePort(); // nothing listens there: connections are refused
  const body = `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
  dead:
    targets: [{ url: "http://127.0.0.1:${deadPort}" }]
routes:
  - path: /app/
    upstream: app
  - path: /dead/
    upstream: dead
`;
  const d = await new Daemon(t).start({ body, workers: 2 });
  const port = await d.port();
  await waitFor('two ready workers', 10_000, async () => ((await d.status()).workers as { state: string }[]).filter((w) => w.state === 'ready').length === 2 ? true : undefined);

  await times(7, async () => t.equal((await request(port, '/app/x')).status, 200));
  await times(3, async () => t.equal((await request(port, '/nowhere')).status, 404));
  await times(4, async () => t.equal((await request(port, '/dead/x')).status, 502));

  const first = await scrapeUntil(d, 'the 14 requests in /metrics', (s) => sumOf(s, 'baton_requests_total') === 14);
  t.equal(sampleValue(first, 'baton_requests_total', APP_OK), 7);
  t.equal(sampleValue(first, 'baton_requests_total', NO_ROUTE), 3);
  t.equal(sampleValue(first, 'baton_requests_total', DEAD), 4);
  t.equal(sumOf(first, 'baton_request_duration_seconds_count'), 14, 'the duration histogram counts every request');
  t.equal(sampleValue(first, 'baton_request_duration_seconds_count', { route: '*/app/' }), 7);
  t.equal(sampleValue(first, 'baton_request_duration_seconds_bucket', { route: '*/app/', le: '+Inf' }), 7);
  t.equal(sampleValue(first, 'baton_request_duration_seconds_count', { route: '(none)' }), 3);
  t.equal(sampleValue(first, 'baton_request_duration_seconds_count', { route: '*/dead/' }), 4);
  t.equal(sampleValue(first, 'baton_upstream_latency_seconds_count', { upstream: 'app' }), 7, 'upstream latency: one per answered request');
  t.equal(sampleValue(first, 'baton_upstream_latency_seconds_count', { upstream: 'dead' }), undefined, 'a refused upstream never answered');
  t.equal(sampleValue(first, 'baton_upstream_failures_total', REFUSED), 4);
  t.equal(sumOf(first, 'baton_upstream_failures_total'), 4);
  t.equal(sampleValue(first, 'baton_worker_restarts_total'), 0);
  t.equal(sampleValue(first, 'baton_workers', { generation: '1', state: 'ready' }), 2);
  t.ok((sampleValue(first, 'baton_build_info') ?? 0) === 1, 'build info');

  // A SIGKILLed worker cannot send a last snapshot; the one above (pushed after its requests) already counts.
  const { types } = await scrape(d);
  const before = await waitFor('two workers', 10_000, () => { const w = d.workerPids(); return w.length === 2 ? w : undefined; });
  process.kill(before[0]!, 'SIGKILL');
  await waitFor('a replacement worker', 10_000, () => {
    const w = d.workerPids();
    return w.length === 2 && !w.includes(before[0]!) ? w : undefined;
  });
  const afterKill = await scrapeUntil(d, 'the restart in /metrics', (s) => sampleValue(s, 'baton_worker_restarts_total') === 1);
  notBackwards(t, first, afterKill, types, 'after SIGKILL');
  t.equal(sumOf(afterKill, 'baton_requests_total'), 14, 'nothing lost: the killed worker had pushed its counts');
  t.equal(sampleValue(afterKill, 'baton_requests_total', APP_OK), 7);
  t.equal(sampleValue(afterKill, 'baton_upstream_failures_total', REFUSED), 4);

  // Two more on generation 1, then a reload: generation 1 drains and leaves, its totals stay.
  await times(2, async () => t.equal((await request(port, '/app/y')).status, 200));
  d.signal('SIGHUP');
  await waitFor('generation 1 gone', 20_000, async () => {
    const s = await d.status();
    const gens = s.generations as { id: number }[];
    return s.generation === 2 && gens.length === 1 && (s.workers as unknown[]).length === 2 ? true : undefined;
  });
  await times(1, async () => t.equal((await request(port, '/app/z')).status, 200));
  const afterReload = await scrapeUntil(d, 'the 17 requests after the reload', (s) => sumOf(s, 'baton_requests_total') === 17);
  notBackwards(t, afterKill, afterReload, types, 'after the reload');
  t.equal(sampleValue(afterReload, 'baton_requests_total', APP_OK), 10);
  t.equal(sampleValue(afterReload, 'baton_request_duration_seconds_count', { route: '*/app/' }), 10);
  t.equal(sampleValue(afterReload, 'baton_upstream_latency_seconds_count', { upstream: 'app' }), 10);
  t.equal(sampleValue(afterReload, 'baton_reloads_total', { outcome: 'ok' }), 1);
  t.equal(sampleValue(afterReload, 'baton_reloads_total', { outcome: 'failed' }), 0);
  t.equal(sampleValue(afterReload, 'baton_worker_restarts_total'), 1, 'restarts of a generation that left still count');
  t.equal(sampleValue(afterReload, 'baton_workers', { generation: '1' }), undefined);
  t.equal(sampleValue(afterReload, 'baton_workers', { generation: '2', state: 'ready' }), 2);
  t.equal(sumOf(afterReload, 'baton_connections', { state: 'draining' }), 0);
});

t.test('/metrics reports open connections by protocol while they are open', async (t) => {
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`,
  });
  const port = await d.port();
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await request(port, '/', { agent })).status, 200);
  // The keep-alive connection stays open: the next push reports it.
  const open = await scrapeUntil(d, 'one open http1 connection', (s) => sampleValue(s, 'baton_connections', { protocol: 'http1', state: 'active' }) === 1);
  t.equal(sampleValue(open, 'baton_connections', { protocol: 'h2', state: 'active' }), 0);
  t.equal(sampleValue(open, 'baton_connections', { protocol: 'websocket', state: 'active' }), 0);
  t.equal(sampleValue(open, 'baton_requests_total', { route: '*/', upstream: '(none)', status_class: '2xx' }), 1);
  agent.destroy();
  await scrapeUntil(d, 'no open connection', (s) => sumOf(s, 'baton_connections') === 0);
});

t.test('/metrics counts an h2c session as one open HTTP/2 connection while it is open, and none once it closes', async (t) => {
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
    h2c: true
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`,
  });
  const client = http2.connect(`http://127.0.0.1:${await d.port()}`);
  t.teardown(() => client.destroy());
  client.on('error', () => {});
  const status = await new Promise<number>((resolve, reject) => {
    const s = client.request({ ':path': '/' });
    s.on('response', (h) => resolve(Number(h[':status'])));
    s.on('error', reject);
    s.resume();
  });
  t.equal(status, 200);
  // The session's connection was taken from the HTTP/1.1 server: it is still the worker's connection (a drain waits for it).
  const open = await scrapeUntil(d, 'one open h2 connection', (s) => sampleValue(s, 'baton_connections', { protocol: 'h2', state: 'active' }) === 1);
  t.equal(sampleValue(open, 'baton_connections', { protocol: 'http1', state: 'active' }), 0, 'not counted twice, nor as HTTP/1.1');
  client.close();
  await scrapeUntil(d, 'no open connection', (s) => sumOf(s, 'baton_connections') === 0);
});
