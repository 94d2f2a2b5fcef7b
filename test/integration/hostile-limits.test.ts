/**
 * Client limits (`limits:` and `routes[].max_body_size`) against the real daemon, with raw sockets: header
 * size and count (431), body size (413, also mid-stream), slowloris (408), body inactivity (408), keep-alive
 * idle timeout and requests per connection; the same on an h2c port, and for HTTP/2.
 */
import http2 from 'node:http2';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest, recordRequests } from '../helpers/raw.js';

const H = 'host: limits.test\r\n';

t.test('client limits are enforced on HTTP/1.1, h2c and HTTP/2', async (t) => {
  const up = await upstream(t, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => res.end(`got ${n}\n`));
  });
  const seen = recordRequests(up);
  const d = await new Daemon(t).start({
    top: `
limits:
  max_header_size: 4k
  max_headers: 20
  max_body_size: 1k
  header_timeout: 1s
  body_timeout: 1s
  keepalive_timeout: 1s
  keepalive_requests: 3`,
    body: `
listeners:
  - listen: 127.0.0.1:0
  - listen: 127.0.0.3:0
    h2c: true
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /big/
    upstream: app
    max_body_size: 0
  - path: /upload/
    upstream: app
    max_body_size: 64k
  - path: /
    upstream: app
`,
  });
  const port = await d.port('127.0.0.1:0');
  const h2cPort = await d.port('127.0.0.3:0');

  t.test('a header block larger than max_header_size gets 431 and the connection closes', async (t) => {
    const r = await rawRequest(port, `GET /hdr-size HTTP/1.1\r\n${H}x-big: ${'a'.repeat(5000)}\r\n\r\n`);
    t.same(r.statuses, [431]);
    t.ok(r.closed, 'closed');
    t.notOk(seen.started.includes('GET /hdr-size'), 'nothing reached the upstream');
  });

  t.test('more header fields than max_headers gets 431 and the connection closes', async (t) => {
    let many = '';
    for (let i = 0; i < 25; i++) many += `x-h${i}: ${i}\r\n`;
    const r = await rawRequest(port, `GET /hdr-count HTTP/1.1\r\n${H}${many}\r\n`);
    t.same(r.statuses, [431]);
    t.ok(r.closed);
    let ok = '';
    for (let i = 0; i < 15; i++) ok += `x-h${i}: ${i}\r\n`;
    const fine = await rawRequest(port, `GET /hdr-count-ok HTTP/1.1\r\n${H}${ok}connection: close\r\n\r\n`);
    t.same(fine.statuses, [200], '15 fields are fine');
    t.notOk(seen.started.includes('GET /hdr-count'));
  });

  t.test('a declared body over max_body_size gets 413 at once, without 100 Continue, and the connection closes', async (t) => {
    const r = await rawRequest(port, `POST /cl HTTP/1.1\r\n${H}content-length: 2000\r\nexpect: 100-continue\r\n\r\n`);
    t.same(r.statuses, [413], 'a 413 and no 100 Continue');
    t.ok(r.closed);
    const exact = await rawRequest(port, [`POST /cl-exact HTTP/1.1\r\n${H}content-length: 1024\r\nconnection: close\r\n\r\n`, 'x'.repeat(1024)]);
    t.same(exact.statuses, [200], 'exactly max_body_size passes');
    t.match(exact.text, /got 1024/);
    t.notOk(seen.started.includes('POST /cl'));
  });

  t.test('Expect: 100-continue within the limit gets 100 Continue once the upstream is ready, then the answer', async (t) => {
    const r = await rawRequest(port, `POST /continue HTTP/1.1\r\n${H}content-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`, {
      until: (text) => text.includes('100 Continue'),
    });
    t.same(r.statuses, [100]);
    const full = await rawRequest(port, [`POST /continue2 HTTP/1.1\r\n${H}content-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`, 'hello'], { gapMs: 200 });
    t.same(full.statuses, [100, 200]);
    t.match(full.text, /got 5/);
  });

  t.test('a chunked body that crosses max_body_size mid-stream gets 413 and a close; the upstream never gets a complete request', async (t) => {
    const chunk = (n: number) => `${n.toString(16)}\r\n${'y'.repeat(n)}\r\n`;
    const r = await rawRequest(port, [`POST /chunked HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n`, chunk(600), chunk(600), chunk(600), '0\r\n\r\n'], { gapMs: 150 });
    t.same(r.statuses, [413]);
    t.ok(r.closed, 'closed');
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.notOk(seen.completed.includes('POST /chunked'), 'the upstream saw no complete request');
    const within = await rawRequest(port, [`POST /chunked-ok HTTP/1.1\r\n${H}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`, chunk(500), chunk(500), '0\r\n\r\n'], { gapMs: 50 });
    t.same(within.statuses, [200], '1000 bytes chunked are within 1k');
    t.match(within.text, /got 1000/);
  });

  t.test('a route can raise max_body_size, or lift it with 0', async (t) => {
    const ten = await rawRequest(port, [`POST /upload/a HTTP/1.1\r\n${H}content-length: 10240\r\nconnection: close\r\n\r\n`, 'z'.repeat(10240)]);
    t.same(ten.statuses, [200]);
    const over = await rawRequest(port, `POST /upload/b HTTP/1.1\r\n${H}content-length: 70000\r\n\r\n`);
    t.same(over.statuses, [413]);
    const big = 'q'.repeat(300 * 1024);
    const lifted = await rawRequest(port, [`POST /big/c HTTP/1.1\r\n${H}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`, `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`]);
    t.same(lifted.statuses, [200]);
    t.match(lifted.text, /got 307200/);
  });

  t.test('a client that sends its headers too slowly gets 408 and a close (slowloris), and so does a silent one', async (t) => {
    const drip = [`GET /slow HTTP/1.1\r\n`, H];
    for (let i = 0; i < 12; i++) drip.push(`x-drip-${i}: 1\r\n`);
    const r = await rawRequest(port, drip, { gapMs: 250, timeoutMs: 30_000 });
    t.same(r.statuses, [408]);
    t.ok(r.closed, 'closed');
    t.comment(`closed after ${r.ms} ms (header_timeout 1s): the header block never ends, so only the timeout can answer`);
    const silent = await rawRequest(port, [], { timeoutMs: 30_000 });
    t.ok(silent.closed, `a connection that sends nothing is closed (after ${silent.ms} ms)`);
    t.ok(silent.ms >= 900, 'not before header_timeout');
    t.notOk(seen.started.includes('GET /slow'));
  });

  t.test('a request body that stops arriving gets 408 and a close after body_timeout, and never reaches the upstream (buffered)', async (t) => {
    const r = await rawRequest(port, [`POST /stall HTTP/1.1\r\n${H}content-length: 100\r\n\r\n`, 'only ten b'], { timeoutMs: 30_000 });
    t.same(r.statuses, [408]);
    t.ok(r.closed);
    t.ok(r.ms >= 900, `not before body_timeout (after ${r.ms} ms)`);
    t.notOk(seen.aborted.includes('POST /stall') || seen.completed.includes('POST /stall'), 'the upstream never saw it: request_buffering reads the body first');
  });

  t.test('an idle keep-alive connection is closed with a FIN after keepalive_timeout', async (t) => {
    const r = await rawRequest(port, `GET /idle HTTP/1.1\r\n${H}\r\n`, { timeoutMs: 30_000 });
    t.same(r.statuses, [200]);
    t.match(r.text, /keep-alive: timeout=1/i, 'the timeout is advertised');
    t.ok(r.closed, 'closed');
    t.notOk(r.reset, 'with a FIN, not a reset');
    t.ok(r.ms >= 900, `not before keepalive_timeout (after ${r.ms} ms; Node closes 1 s after the advertised timeout)`);
  });

  t.test('the last request allowed by keepalive_requests gets Connection: close and the connection ends', async (t) => {
    const one = `GET /again HTTP/1.1\r\n${H}\r\n`;
    const r = await rawRequest(port, [one, one, one], { gapMs: 150, timeoutMs: 30_000 });
    t.same(r.statuses, [200, 200, 200]);
    const heads = r.text.split('HTTP/1.1 ').slice(1);
    t.match(heads[0], /connection: keep-alive/i);
    t.match(heads[2], /connection: close/i, 'the third response says close');
    t.ok(r.closed, 'and the connection ends');
    t.comment(`closed ${r.ms} ms after the first request`);
  });

  t.test('on an h2c port: HTTP/1.1 slowloris gets 408, HTTP/2 limits answer 431 and 413, an idle session gets GOAWAY', async (t) => {
    const slow = await rawRequest(h2cPort, [`GET /h2c-slow HTTP/1.1\r\n`, H, 'x-a: 1\r\n', 'x-b: 1\r\n', 'x-c: 1\r\n', 'x-d: 1\r\n', 'x-e: 1\r\n', 'x-f: 1\r\n', 'x-g: 1\r\n'], { gapMs: 300, timeoutMs: 30_000, host: '127.0.0.3' });
    t.same(slow.statuses, [408], 'the HTTP/1.1 side of an h2c port has a header timeout too');
    t.ok(slow.closed);

    const session = http2.connect(`http://127.0.0.3:${h2cPort}`);
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    const ask = (headers: http2.OutgoingHttpHeaders, body?: string) => new Promise<number>((resolve, reject) => {
      const req = session.request(headers);
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end(body);
    });
    const many: http2.OutgoingHttpHeaders = { ':path': '/h2-many' };
    for (let i = 0; i < 25; i++) many[`x-h${i}`] = String(i);
    t.equal(await ask(many), 431, 'too many header fields');
    t.equal(await ask({ ':path': '/h2-big', 'x-big': 'b'.repeat(5000) }), 431, 'a header list over max_header_size');
    t.equal(await ask({ ':path': '/h2-body', ':method': 'POST', 'content-length': '2000' }, 'p'.repeat(2000)), 413, 'a declared body over max_body_size');
    t.equal(await ask({ ':path': '/h2-chunkless', ':method': 'POST' }, 'p'.repeat(3000)), 413, 'a body without content-length, counted as it streams');
    t.equal(await ask({ ':method': 'CONNECT', ':authority': 'internal.test:443' }), 405, 'CONNECT is refused over HTTP/2 too');
    t.equal(await ask({ ':path': '/h2-ok' }), 200);
    const t0 = Date.now();
    await new Promise<void>((resolve) => {
      session.once('goaway', () => resolve());
      session.once('close', () => resolve());
    });
    const idle = Date.now() - t0;
    t.ok(idle >= 800, `the idle session got GOAWAY after ${idle} ms, not before keepalive_timeout (1s)`);
  });
});
