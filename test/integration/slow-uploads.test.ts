/**
 * @module Issue 16 item 5 against the real daemon: slow uploads must not take the upstream connections that
 * ordinary requests need. With request buffering (the default) 200 uploads that stall half-way hold no upstream
 * connection and ordinary requests are answered; with `request_buffering: off` the same uploads take every
 * connection under `max_connections` and ordinary requests are turned away (the attack this fixes).
 */
import net from 'node:net';
import t from 'tap';
import { Daemon, waitFor, type Tap } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

const UPLOADS = 200;
const CAP = 20;

async function attack(t: Tap, buffering: boolean) {
  let connections = 0;
  let posts = 0;
  const up = await upstream(t, (req, res) => {
    if (req.method === 'POST') posts++;
    req.resume();
    req.on('end', () => res.end('ok\n'));
  });
  up.server.on('connection', () => { connections++; });
  const d = new Daemon(t);
  await d.start({
    body: `
limits: { request_buffering: ${buffering ? 'on' : 'off'} }
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}", max_connections: ${CAP} }]
    queue: { size: 10, timeout: 1s }
routes:
  - path: /
    upstream: app
`,
  });
  const port = await d.port();
  const sockets: net.Socket[] = [];
  t.teardown(() => { for (const s of sockets) s.destroy(); });
  for (let i = 0; i < UPLOADS; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    // 1 MiB announced, 1 KiB sent, then nothing more: a slow upload.
    s.write(`POST /upload/${i} HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n${'u'.repeat(1024)}`);
    sockets.push(s);
  }
  // Buffered, every upload sits in baton; streamed, the first CAP take the connections (the rest are queued or refused).
  if (!buffering) await waitFor('the uploads to take every connection', 30_000, () => (posts >= CAP ? true : undefined));
  else await waitFor('every upload to reach baton', 30_000, async () => {
    const conns = (await (await fetch(`http://${await d.adminAddress()}/metrics`)).text()).match(/baton_connections\{protocol="http1",state="active"\} (\d+)/);
    return conns !== null && Number(conns[1]) >= UPLOADS ? true : undefined;
  });
  const ordinary = [];
  for (let i = 0; i < 20; i++) ordinary.push((await request(port, `/ordinary/${i}`, { timeoutMs: 30_000 })).status);
  return { ordinary, connections, posts, d };
}

t.test('with request buffering, 200 stalled uploads hold no upstream connection: ordinary requests are answered', async (t) => {
  const r = await attack(t, true);
  t.strictSame(r.ordinary, new Array(20).fill(200), 'all 20 ordinary requests answered 200');
  t.equal(r.posts, 0, 'no upload reached the upstream');
  t.ok(r.connections <= 2, `the upstream saw ${r.connections} connection(s) (ordinary requests on keep-alive)`);
});

t.test('with request_buffering off, the same uploads take all max_connections: ordinary requests are turned away (503)', async (t) => {
  const r = await attack(t, false);
  t.equal(r.posts, CAP, `${CAP} uploads hold every connection under the cap`);
  t.ok(r.ordinary.every((s) => s === 503), `ordinary requests: ${[...new Set(r.ordinary)].join(', ')}`);
});
