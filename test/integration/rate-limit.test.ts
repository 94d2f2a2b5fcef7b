/**
 * @module Daemon-wide rate limits against the real daemon: 429 with Retry-After (HTTP/1.1 and HTTP/2), keys by
 * client address or header, the metric, the accuracy of one limit shared by two workers under load, and buckets
 * that survive a reload (no fresh burst for a new generation).
 */
import http from 'node:http';
import http2 from 'node:http2';
import t from 'tap';
import { Daemon, sleep, waitFor } from '../helpers/daemon.js';
import { upstream, request } from '../helpers/http.js';

function body(url: string, limited: string, more = ''): string {
  return `
listeners:
  - listen: 127.0.0.1:0
    h2c: true
upstreams:
  app:
    targets: [{ url: "${url}" }]
routes:
  - path: /
    upstream: app
  - path: /limited
    upstream: app
    rate_limit: ${limited}
${more}`;
}

async function metricsText(d: Daemon): Promise<string> {
  const res = await fetch(`http://${await d.adminAddress()}/metrics`);
  return res.text();
}

function h2get(port: number, path: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', reject);
    const req = client.request({ ':path': path });
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => {
        client.close();
        resolve({ status: Number(h[':status']), retryAfter: h['retry-after'] as string | undefined });
      });
    });
    req.end();
  });
}

t.test('past a route\'s burst, requests get 429 with Retry-After (HTTP/1.1 and HTTP/2); other routes and keys are not limited; the metric counts by route', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = new Daemon(t);
  await d.start({
    body: body(up.url, '{ rate: 1/m, burst: 2 }', '  - path: /by-key\n    upstream: app\n    rate_limit: { rate: 1/m, key: "header:X-Api-Key" }'),
  });
  const port = await d.port();
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await request(port, '/limited')).status);
  t.same(statuses, [200, 200, 200], 'the bucket holds burst + 1 requests');
  const refused = await request(port, '/limited');
  t.equal(refused.status, 429);
  t.ok(Number(refused.headers['retry-after']) >= 1 && Number(refused.headers['retry-after']) <= 60, `Retry-After: ${refused.headers['retry-after']} (the next token, 1/m)`);
  const h2 = await h2get(port, '/limited');
  t.same([h2.status, Number(h2.retryAfter) >= 1], [429, true], 'HTTP/2 too');
  t.equal((await request(port, '/other')).status, 200, 'a route without rate_limit is not limited');
  const keyed = async (key?: string) => (await request(port, '/by-key', { headers: key ? { 'x-api-key': key } : {} })).status;
  t.same([await keyed('a'), await keyed('a'), await keyed('b'), await keyed(), await keyed()], [200, 429, 200, 200, 200], 'one bucket per header value; no header, no limit (as nginx)');
  const text = await waitFor('the metric', 30_000, async () => {
    const m = await metricsText(d);
    return /baton_rate_limited_total\{route="\*\/limited"\} 2\n/.test(m) && /baton_rate_limited_total\{route="\*\/by-key"\} 1\n/.test(m) ? m : undefined;
  });
  t.match(text, /baton_requests_total\{route="\*\/limited",upstream="app",status_class="4xx"\} 2/, 'a 429 is also a 4xx request');
  const line = await d.waitForLine('the access-log line of a 429', (l) => l.status === 429, 15_000, d.accessLog);
  t.equal(line.path, '/limited');
});

interface Counts {
  ok: number;
  limited: number;
  other: string[];
}

/** `concurrency` loops of requests on new connections (spread over the workers by the kernel) until `stop()`. */
function load(port: number, path: string, concurrency: number): { stop: () => Promise<Counts & { ms: number }> } {
  let running = true;
  const counts: Counts = { ok: 0, limited: 0, other: [] };
  const t0 = performance.now();
  let lastSent = t0;
  const one = () => new Promise<void>((resolve) => {
    lastSent = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) counts.ok++;
        else if (res.statusCode === 429) counts.limited++;
        else counts.other.push(String(res.statusCode));
        resolve();
      });
    });
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => { counts.other.push(err.message); resolve(); });
  });
  const loops = Array.from({ length: concurrency }, async () => {
    for (let i = 0; running && i < 1_000_000; i++) await one();
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      // The decisions span from the first request sent to the last one sent.
      return { ...counts, ms: lastSent - t0 };
    },
  };
}

t.test('one limit for the whole daemon: with 2 workers under load, allowed requests are rate × time + burst within 10 %', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = new Daemon(t);
  // Low enough that a loaded machine still exceeds it all along: the formula holds for a saturated bucket only.
  const rate = 10;
  const burst = 10;
  await d.start({ workers: 2, body: body(up.url, `{ rate: ${rate}/s, burst: ${burst} }`) });
  const port = await d.port();
  const run = load(port, '/limited', 8);
  await sleep(5000);
  const result = await run.stop();
  const expected = (rate * result.ms) / 1000 + burst + 1;
  t.same(result.other, [], 'every answer is a 200 or a 429');
  // More refused than allowed: the clients offered over twice the rate (a 2x margin was too strict on a machine
  // loaded enough that 8 clients sent 180 requests in 5 s: 63 allowed, 117 refused, and still within 2.2 %).
  t.ok(result.limited > result.ok, `the load exceeds the limit all along (${result.ok} allowed, ${result.limited} refused)`);
  const error = (result.ok - expected) / expected;
  t.ok(Math.abs(error) <= 0.1, `${result.ok} allowed in ${Math.round(result.ms)} ms, expected ${Math.round(expected)} (${(error * 100).toFixed(1)} %)`);
  const status = await d.status();
  const served = (status.workers as { requests: number }[]).map((w) => w.requests);
  t.ok(served.length === 2 && served.every((n) => n > 0), `both workers served requests (${served.join(', ')})`);
});

t.test('a reload keeps the buckets: the new generation gets no fresh burst (a changed limit starts afresh)', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = new Daemon(t);
  await d.start({ body: body(up.url, '{ rate: 1/m, burst: 1 }') });
  const port = await d.port();
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await request(port, '/limited')).status);
  t.same(statuses, [200, 200, 429]);
  d.signal('SIGHUP');
  await d.waitForLine('generation 2 ready', (l) => l.msg === 'generation ready' && l.generation === 2, 60_000);
  await d.waitForLine('generation 1 gone', (l) => l.msg === 'generation left' && l.generation === 1, 60_000);
  t.equal((await request(port, '/limited')).status, 429, 'generation 2 shares the spent bucket');
  d.writeConfig({ body: body(up.url, '{ rate: 2/m, burst: 1 }') });
  d.signal('SIGHUP');
  await d.waitForLine('generation 3 ready', (l) => l.msg === 'generation ready' && l.generation === 3, 60_000);
  t.equal((await request(port, '/limited')).status, 200, 'a changed rate_limit has buckets of its own');
});

t.test('a binary upgrade goes on from the old master\'s buckets: the new master\'s workers get no fresh burst', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = new Daemon(t);
  await d.start({ body: body(up.url, '{ rate: 1/m, burst: 1 }') });
  const port = await d.port();
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await request(port, '/limited')).status);
  t.same(statuses, [200, 200, 429]);
  const oldPid = d.masterPid;
  d.signal('SIGUSR2');
  const newPid = await d.newMasterPid(oldPid);
  await d.waitForLine('the new master serves', (l) => l.msg === 'serving' && l.pid === newPid, 60_000);
  d.signal('SIGWINCH', oldPid);
  d.signal('SIGQUIT', oldPid);
  await d.waitForLine('the old master gone', (l) => l.msg === 'master exiting' && l.pid === oldPid, 60_000);
  t.equal((await request(port, '/limited')).status, 429, 'the new master\'s worker refuses: the bucket is still spent');
});
