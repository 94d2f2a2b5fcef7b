/**
 * @module Hand-off on listeners behind a load balancer: a keep-alive connection whose client came in a PROXY header,
 * and one on a unix listener, move to the new generation with the client they had (the receiver never waits for a
 * second PROXY header, which would take the next request's bytes for one).
 */
import path from 'node:path';
import t from 'tap';
import { alive, Daemon, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { KeepAlive, type Answer } from '../helpers/keepalive.js';

t.setTimeout(300_000);

/** Idle connections must outlive a slow reload on a loaded machine: only the drain may close them. */
const LONG_KEEPALIVE = 'limits: { keepalive_timeout: 120s }';

/** The request-id prefix is the answering worker process's own (lib/worker/headers.ts). */
const worker = (a: Answer) => a.headers['x-request-id']!.split('-')[0];

function config(upstreamUrl: string, listener: string, variant: string): string {
  return `
listeners:
${listener}
upstreams:
  app:
    targets: [ { url: "${upstreamUrl}" } ]
routes:
  - path: /
    upstream: app
    request_headers: { set: { x-variant: "${variant}" } }
`;
}

async function reload(d: Daemon, generation: number): Promise<number[]> {
  const old = d.workerPids();
  d.signal('SIGHUP');
  await waitFor(`generation ${generation} serving`, 60_000, async () => ((await d.status().catch(() => null))?.generation === generation ? true : undefined));
  await waitFor('the old workers gone', 60_000, () => (old.some(alive) ? undefined : true));
  return old;
}

t.test('a keep-alive connection on a proxy_protocol listener moves with the client its PROXY header named', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']} ${req.headers['x-variant']} ${req.url}`));
  const listener = '  - listen: 127.0.0.1:0\n    proxy_protocol: true';
  const d = await new Daemon(t).start({ body: config(up.url, listener, 'one'), top: LONG_KEEPALIVE });
  const c = await KeepAlive.open(t, await d.port());
  c.send('PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n');
  const a1 = await c.get('/a');
  t.equal(a1.body, '203.0.113.7 one /a');

  d.writeConfig({ body: config(up.url, listener, 'two'), top: LONG_KEEPALIVE });
  await reload(d, 2);
  t.equal(c.closed, false, 'the idle connection outlived the worker that read its PROXY header');
  const a2 = await c.get('/b');
  t.equal(a2.body, '203.0.113.7 two /b', 'the new generation serves it, and the client is still the one of the PROXY header');
  t.not(worker(a2), worker(a1), 'answered by another worker process');
  const line = await d.waitForLine('the access-log line of /b', (l) => l.path === '/b', 30_000, d.accessLog);
  t.equal(line.client, '203.0.113.7');
  const a3 = await c.get('/c');
  t.equal(a3.status, 200, 'and keeps serving it');
  t.equal(c.closed, false);
});

t.test('a keep-alive connection on a unix listener moves, and its client is still "unix:"', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']} ${req.headers['x-variant']} ${req.url}`));
  const d = new Daemon(t);
  const sock = path.join(d.dir, 'http.sock');
  const listener = '  - listen: unix:http.sock';
  await d.start({ body: config(up.url, listener, 'one'), top: LONG_KEEPALIVE });
  const c = await KeepAlive.open(t, sock);
  const a1 = await c.get('/a');
  t.equal(a1.body, 'unix: one /a');

  d.writeConfig({ body: config(up.url, listener, 'two'), top: LONG_KEEPALIVE });
  await reload(d, 2);
  t.equal(c.closed, false, 'the idle connection outlived the worker that accepted it');
  const a2 = await c.get('/b');
  t.equal(a2.body, 'unix: two /b');
  t.not(worker(a2), worker(a1), 'answered by another worker process');
});

t.test('a connection whose PROXY header has not arrived whole stays with its worker and is answered there, never garbled', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']} ${req.headers['x-variant']} ${req.url}`));
  const listener = '  - listen: 127.0.0.1:0\n    proxy_protocol: true';
  const top = 'limits: { keepalive_timeout: 120s, header_timeout: 120s }';
  const d = await new Daemon(t).start({ body: config(up.url, listener, 'one'), top });
  const port = await d.port();
  const gen1 = d.workerPids();
  // One connection with half a header in the worker's buffer, one with nothing sent yet.
  const half = await KeepAlive.open(t, port);
  half.send('PROXY TCP4 203.0');
  const silent = await KeepAlive.open(t, port);
  await d.waitForLine('both connections accepted', () => true, 30_000);

  d.writeConfig({ body: config(up.url, listener, 'two'), top });
  d.signal('SIGHUP');
  await waitFor('generation 2 serving', 60_000, async () => ((await d.status().catch(() => null))?.generation === 2 ? true : undefined));
  await d.waitForLine('the old workers draining', (l) => l.msg === 'draining' && gen1.includes(Number(l.pid)), 60_000);
  // The drain has had its chance to move them (a lower bound, not a timing assertion: nothing may happen).
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(half.closed, false, 'the half-read connection is still open');
  t.equal(silent.closed, false, 'the silent one too');

  half.send('.113.7 127.0.0.1 5555 80\r\n');
  const a = await half.get('/half');
  t.equal(a.status, 200, 'the rest of its header and its request are answered');
  t.equal(a.body, '203.0.113.7 one /half', 'by the old generation, which read the first half, with the client of the header');
  if (a.headers.connection !== 'close') {
    // Kept alive: idle now, with its header read, it moves like any other connection.
    const next = await waitFor('the connection served by the new generation', 60_000, async () => {
      const r = await half.get('/half-next');
      return r.body.includes(' two ') ? r : undefined;
    });
    t.equal(next.body, '203.0.113.7 two /half-next', 'its next request is the new generation\'s, with the same client');
  }

  silent.send('PROXY TCP4 198.51.100.9 127.0.0.1 6666 80\r\n');
  const b = await silent.get('/silent');
  t.equal(b.status, 200);
  t.equal(b.body.split(' ')[0], '198.51.100.9', 'its header was read as a header, wherever it was served');
});
