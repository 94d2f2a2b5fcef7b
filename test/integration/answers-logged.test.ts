/**
 * Every answer baton gives is in the access log and in /metrics, however early it comes: the HTTP/1 parser's
 * refusals (400, 408, 431), admission's (a missing Host, CONNECT, an unsupported Expect, over HTTP/1 and
 * HTTP/2). The logs name an upstream one way (`upstream`: its name, `target`: host:port), and
 * `log.query_strings: false` keeps query strings out of both logs.
 */
import net from 'node:net';
import t from 'tap';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';
import { Daemon, freePort, waitFor } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';
import { rawRequest } from '../helpers/raw.js';
import { FRAME, frame, h2raw, literalHeaders, type Frame } from '../helpers/h2-raw.js';

const H = 'host: logged.test\r\n';

t.test('every answer, however early, has its access-log line and its count', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok\n'));
  const d = await new Daemon(t).start({
    top: 'limits:\n  max_header_size: 4k\n  header_timeout: 1s',
    body: `
listeners:
  - listen: 127.0.0.1:0
  - listen: 127.0.0.3:0
    h2c: true
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /
    upstream: app
`,
  });
  const port = await d.port('127.0.0.1:0');
  const h2cPort = await d.port('127.0.0.3:0');
  const h1: [string, string, number][] = [
    ['Content-Length with Transfer-Encoding (the parser)', `POST /a HTTP/1.1\r\n${H}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ['garbage (the parser)', '\x01\x02 what\r\n\r\n', 400],
    ['a header block over max_header_size (the parser)', `GET /b HTTP/1.1\r\n${H}x-big: ${'a'.repeat(5000)}\r\n\r\n`, 431],
    ['headers not received within header_timeout (the parser)', `GET /c HTTP/1.1\r\n`, 408],
    ['no Host in HTTP/1.1', 'GET /d HTTP/1.1\r\n\r\n', 400],
    ['CONNECT', 'CONNECT internal.test:443 HTTP/1.1\r\nhost: internal.test:443\r\n\r\n', 405],
    ['an Expect other than 100-continue', `POST /e HTTP/1.1\r\n${H}expect: 200-ok\r\ncontent-length: 0\r\n\r\n`, 417],
  ];
  for (const [what, bytes, status] of h1) {
    const r = await rawRequest(port, bytes, { timeoutMs: 30_000 });
    t.same(r.statuses, [status], `${what}: ${status}`);
  }
  const socket = net.connect(h2cPort, '127.0.0.3');
  t.teardown(() => { socket.destroy(); });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const frames: Frame[] = [];
  h2raw(socket, (f) => frames.push(f));
  socket.write(frame(FRAME.HEADERS, 0x5, 1, literalHeaders([[':method', 'CONNECT'], [':authority', 'internal.test:443']])));
  socket.write(frame(FRAME.HEADERS, 0x5, 3, literalHeaders([[':method', 'GET'], [':scheme', 'http'], [':path', '/f'], [':authority', 'logged.test'], ['expect', '200-ok']])));
  await waitFor('both HTTP/2 answers', 30_000, () => (frames.filter((f) => f.type === FRAME.HEADERS).length >= 2 ? true : undefined));

  const expected = new Map<string, number>([['400 HTTP/1.1', 3], ['431 HTTP/1.1', 1], ['408 HTTP/1.1', 1], ['405 HTTP/1.1', 1], ['417 HTTP/1.1', 1], ['405 HTTP/2.0', 1], ['417 HTTP/2.0', 1]]);
  const lines = await waitFor('an access-log line per answer', 30_000, () => {
    const l = d.lines(d.accessLog);
    return l.length >= 9 ? l : undefined;
  });
  const got = new Map<string, number>();
  for (const l of lines) got.set(`${l.status} ${l.protocol}`, (got.get(`${l.status} ${l.protocol}`) ?? 0) + 1);
  t.same(Object.fromEntries(got), Object.fromEntries(expected), 'one line per answer, with its status and protocol');
  for (const l of lines) t.match(l, { client: '127.0.0.1', request_id: /\S/, upstream: null, target: null }, `${l.status} names its client and a request id`);
  const counted = await waitFor('the 4xx answers in /metrics', 30_000, async () => {
    const text = await (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
    const n = sampleValue(parseExposition(text).samples, 'baton_requests_total', { route: '(none)', upstream: '(none)', status_class: '4xx' }) ?? 0;
    return n >= 9 ? n : undefined;
  });
  t.equal(counted, 9, 'each counted once');
});

t.test('the logs name an upstream by name and target, and log.query_strings: false keeps query strings out of both logs', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok\n'));
  const deadPort = await freePort();
  const d = await new Daemon(t).start({
    log: '  query_strings: false',
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
  dead:
    targets: [{ url: "http://127.0.0.1:${deadPort}" }]
routes:
  - path: /dead/
    upstream: dead
  - path: /
    upstream: app
`,
  });
  const port = await d.port();
  t.equal((await request(port, '/page?token=secret-1', { headers: { 'x-request-id': 'q-1' } })).status, 200);
  t.equal((await request(port, '/dead/page?token=secret-2', { headers: { 'x-request-id': 'q-2' } })).status, 502);
  const ok = await d.waitForLine('the access line of the 200', (l) => l.request_id === 'q-1', 30_000, d.accessLog);
  t.match(ok, { path: '/page', upstream: 'app', target: up.url.slice('http://'.length) });
  const failed = await d.waitForLine('the access line of the 502', (l) => l.request_id === 'q-2', 30_000, d.accessLog);
  t.match(failed, { path: '/dead/page', status: 502, upstream: 'dead', target: `127.0.0.1:${deadPort}` });
  const error = await d.waitForLine('the error-log line of the 502', (l) => l.request_id === 'q-2' && l.msg === 'upstream request failed');
  t.match(error, { path: '/dead/page', upstream: 'dead', target: `127.0.0.1:${deadPort}`, route: '*/dead/' });
  t.notOk(d.readLog().includes('secret') || d.readLog(d.accessLog).includes('secret'), 'no query string in either log');
});
