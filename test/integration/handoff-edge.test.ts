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

/** The request-id prefix names the worker process that answered (lib/worker/headers.ts). */
const worker = (a: Answer) => Number(a.headers['x-request-id']!.split('-')[0]);

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
  const gen1 = await reload(d, 2);
  t.equal(c.closed, false, 'the idle connection outlived the worker that read its PROXY header');
  const a2 = await c.get('/b');
  t.equal(a2.body, '203.0.113.7 two /b', 'the new generation serves it, and the client is still the one of the PROXY header');
  t.notOk(gen1.includes(worker(a2)), 'answered by a worker of the new generation');
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
  const gen1 = await reload(d, 2);
  t.equal(c.closed, false, 'the idle connection outlived the worker that accepted it');
  const a2 = await c.get('/b');
  t.equal(a2.body, 'unix: two /b');
  t.notOk(gen1.includes(worker(a2)), 'answered by a worker of the new generation');
});
