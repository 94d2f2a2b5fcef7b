/**
 * @module Connection caps, the queue and the retry policy against the real daemon: requests over
 * `max_connections` wait in the bounded queue, then 503 with a log line, /metrics shows the queue; `retry` retries
 * what it names (a 503 answer, a reset POST with a buffered body), never a streamed body, within `tries`.
 */
import http from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { Daemon, waitFor, type Tap } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

function config(targets: string[], extra = '', top = ''): string {
  return `${top}
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [${targets.join(', ')}]${extra}
routes:
  - path: /
    upstream: app
`;
}

async function daemon(t: Tap, body: string): Promise<{ d: Daemon; port: number }> {
  const d = new Daemon(t);
  await d.start({ body });
  return { d, port: await d.port() };
}

async function metrics(d: Daemon): Promise<string> {
  return (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
}

/** An upstream that holds every /hold request until `release()`; counts the requests in flight at most. */
async function holdingUpstream(t: Tap) {
  const held: http.ServerResponse[] = [];
  let inflight = 0;
  let most = 0;
  const up = await upstream(t, (req, res) => {
    inflight++;
    most = Math.max(most, inflight);
    res.on('close', () => { inflight--; });
    req.resume();
    if (req.url?.startsWith('/hold')) held.push(res);
    else res.end(`served ${req.url}\n`);
  });
  return {
    ...up,
    held,
    most: () => most,
    release: () => { for (const r of held.splice(0)) r.end(`served ${r.req.url}\n`); },
  };
}

t.test('requests over max_connections wait in the queue and are served in turn; the upstream never sees more than the cap', async (t) => {
  const up = await holdingUpstream(t);
  const { port } = await daemon(t, config([`{ url: "${up.url}", max_connections: 2 }`], '\n    queue: { size: 10, timeout: 60s }'));
  const replies = Array.from({ length: 6 }, (_, i) => request(port, `/hold-${i}`, { timeoutMs: 60_000 }));
  await waitFor('two requests at the upstream', 30_000, () => (up.held.length === 2 ? true : undefined));
  for (let round = 0; round < 2; round++) {
    up.release();
    await waitFor('the next two from the queue', 30_000, () => (up.held.length === 2 ? true : undefined));
  }
  up.release();
  const done = await Promise.all(replies);
  t.strictSame(done.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  t.equal(up.most(), 2, 'at most 2 requests in flight at the upstream');
});

t.test('a full queue answers 503 at once, a wait past queue.timeout answers 503; both logged and in /metrics', async (t) => {
  const up = await holdingUpstream(t);
  const { d, port } = await daemon(t, config([`{ url: "${up.url}", max_connections: 1 }`], '\n    queue: { size: 1, timeout: 1s }'));
  const first = request(port, '/hold-a', { timeoutMs: 60_000 });
  await waitFor('the first request at the upstream', 30_000, () => (up.held.length === 1 ? true : undefined));
  const queued = request(port, '/queued', { timeoutMs: 60_000 });
  await waitFor('one request queued', 30_000, async () => ((await metrics(d)).includes('baton_upstream_queue_depth{upstream="app"} 1') ? true : undefined));
  const full = await request(port, '/over');
  t.equal(full.status, 503, 'the queue is full: 503 at once');
  const timedOut = await queued;
  t.equal(timedOut.status, 503, 'the queued request waited queue.timeout in vain');
  // The error log is written asynchronously: the line may reach the file after the response reached us.
  const lines = await waitFor('a log line for each 503', 30_000, () => {
    const found = d.lines().filter((l) => String(l.msg).startsWith('upstream overloaded, 503'));
    return found.length >= 2 ? found : undefined;
  });
  t.equal(lines.length, 2, 'each 503 has its log line');
  t.match(lines.map((l) => l.msg), [/queue is full/, /queue.timeout/]);
  up.release();
  t.equal((await first).status, 200);
  await waitFor('the queue in /metrics', 30_000, async () => {
    const text = await metrics(d);
    return text.includes('baton_upstream_queue_total{upstream="app",outcome="timeout"} 1') && text.includes('baton_upstream_queue_total{upstream="app",outcome="full"} 1') &&
      /baton_upstream_queue_wait_seconds_count\{upstream="app"\} 1/.test(text) ? true : undefined;
  });
  t.pass('depth, outcomes and waits are in /metrics');
});

/** Two targets: the first answers `status` (or resets after reading the body), the second serves. */
async function pair(t: Tap, first: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: string[] = [];
  const a = await upstream(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c; });
    req.on('end', () => {
      seen.push(`a ${req.method} ${body.length}`);
      first(req, res);
    });
  });
  const b = await upstream(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c; });
    req.on('end', () => {
      seen.push(`b ${req.method} ${body.length}`);
      res.end(`b got ${body.length} bytes\n`);
    });
  });
  return { seen, targets: [`{ url: "${a.url}" }`, `{ url: "${b.url}" }`] };
}

const reset = (req: http.IncomingMessage) => (req.socket as net.Socket).resetAndDestroy();

t.test('retry on "503": the next target answers instead; by default a 503 is relayed', async (t) => {
  const p = await pair(t, (_req, res) => { res.writeHead(503); res.end('busy\n'); });
  const retrying = await daemon(t, config(p.targets, '\n    max_fails: 0\n    retry: { on: [connect_failure, "503"] }'));
  const r = await request(retrying.port, '/x');
  t.equal(r.status, 200);
  t.strictSame(p.seen, ['a GET 0', 'b GET 0']);
  const plain = await daemon(t, config(p.targets, '\n    max_fails: 0'));
  t.equal((await request(plain.port, '/y')).status, 503, 'default policy: relayed');
});

t.test('a POST reset after its body was read is retried with the buffered body only when retry.methods allows POST', async (t) => {
  const p = await pair(t, reset);
  const body = 'payload '.repeat(5000);
  const plain = await daemon(t, config(p.targets, '\n    max_fails: 0'));
  t.equal((await request(plain.port, '/p', { method: 'POST', body })).status, 502, 'default: a POST is not retried after a reset');
  const posting = await daemon(t, config(p.targets, '\n    max_fails: 0\n    retry: { on: [connect_failure, reset], methods: [idempotent, POST] }'));
  const r = await request(posting.port, '/p', { method: 'POST', body });
  t.equal(r.status, 200);
  t.equal(r.body, `b got ${body.length} bytes\n`, 'the buffered body was replayed whole');
});

t.test('a streamed body (request_buffering off) is never sent twice, whatever the policy says', async (t) => {
  const p = await pair(t, reset);
  const { port } = await daemon(t, config(p.targets, '\n    max_fails: 0\n    retry: { on: [connect_failure, reset], methods: [POST] }', 'limits: { request_buffering: off }'));
  t.equal((await request(port, '/p', { method: 'POST', body: 'streamed' })).status, 502);
  t.strictSame(p.seen, ['a POST 8'], 'the second target never saw it');
});

t.test('retry.tries bounds the attempts: tries 1 means no failover at all', async (t) => {
  const live = await upstream(t, (_req, res) => res.end('ok\n'));
  const targets = ['{ url: "http://127.0.0.1:1" }', `{ url: "${live.url}" }`];
  const once = await daemon(t, config(targets, '\n    max_fails: 0\n    retry: { tries: 1 }'));
  t.equal((await request(once.port, '/a')).status, 502, 'the dead first target, and no second try');
  const again = await daemon(t, config(targets, '\n    max_fails: 0'));
  t.equal((await request(again.port, '/a')).status, 200, 'default: the connect failure moves on');
});
