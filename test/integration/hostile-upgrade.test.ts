/**
 * Upgrade (WebSocket) requests against the real daemon, with raw sockets: every hostile-client case of the
 * README that applies to an Upgrade request gets the answer a plain request gets (the same admission), and no
 * handshake, however it ends, leaves a descriptor or a counted connection behind in the worker.
 */
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';
import { Daemon, freePort, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest } from '../helpers/raw.js';

const WS = 'upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const H = 'host: up.test\r\n';
const HIDDEN = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;

/** A handshake: request line, then the WebSocket headers, then `headers` (each ending in CRLF). */
const hs = (line: string, headers: string, after = '') => `${line}\r\n${WS}${headers}\r\n${after}`;

/** name → the handshake bytes and its status: the one a plain request of the same shape gets, unless `plain` says otherwise. */
const CASES: Record<string, { bytes: string; status: number; plain?: number }> = {
  'a Host with userinfo': { bytes: hs('GET /ws HTTP/1.1', 'host: victim.example@evil.example\r\n'), status: 400 },
  'a Host with a path': { bytes: hs('GET /ws HTTP/1.1', 'host: up.test/admin\r\n'), status: 400 },
  'a Host with a space': { bytes: hs('GET /ws HTTP/1.1', 'host: up.test evil\r\n'), status: 400 },
  'two Host fields': { bytes: hs('GET /ws HTTP/1.1', 'host: a.test\r\nhost: b.test\r\n'), status: 400 },
  'no Host in HTTP/1.1': { bytes: hs('GET /ws HTTP/1.1', ''), status: 400 },
  'Content-Length with Transfer-Encoding': { bytes: hs('GET /ws HTTP/1.1', `${H}content-length: 5\r\ntransfer-encoding: chunked\r\n`, `0\r\n\r\n${HIDDEN}`), status: 400 },
  'two different Content-Lengths': { bytes: hs('GET /ws HTTP/1.1', `${H}content-length: 0\r\ncontent-length: 44\r\n`, HIDDEN), status: 400 },
  'a negative Content-Length': { bytes: hs('GET /ws HTTP/1.1', `${H}content-length: -1\r\n`, HIDDEN), status: 400 },
  'Transfer-Encoding: gzip': { bytes: hs('GET /ws HTTP/1.1', `${H}transfer-encoding: gzip\r\n`, `0\r\n\r\n${HIDDEN}`), status: 400 },
  'a header name with a space': { bytes: hs('GET /ws HTTP/1.1', `${H}x y: 1\r\n`), status: 400 },
  'a header value with DEL': { bytes: hs('GET /ws HTTP/1.1', `${H}x-a: a\x7fb\r\n`), status: 400 },
  'a percent-encoded NUL in the path': { bytes: hs('GET /ws/%00 HTTP/1.1', H), status: 400 },
  'a path that does not decode': { bytes: hs('GET /ws/%zz HTTP/1.1', H), status: 400 },
  'a path with a control character': { bytes: hs('GET /ws/\x01 HTTP/1.1', H), status: 400 },
  'an asterisk target': { bytes: hs('OPTIONS * HTTP/1.1', H), status: 400 },
  'an absolute-form target with userinfo': { bytes: hs('GET http://user@up.test/ws HTTP/1.1', H), status: 400 },
  'an HTTP/2.0 request line on an HTTP/1 connection': { bytes: hs('GET /ws HTTP/2.0', H), status: 505 },
  'CONNECT': { bytes: hs('CONNECT internal.test:443 HTTP/1.1', 'host: internal.test:443\r\n', HIDDEN), status: 405 },
  'an Expect other than 100-continue': { bytes: hs('GET /ws HTTP/1.1', `${H}expect: 200-ok\r\n`), status: 417 },
  'more header fields than max_headers': { bytes: hs('GET /ws HTTP/1.1', H + Array.from({ length: 25 }, (_, i) => `x-h${i}: ${i}\r\n`).join('')), status: 431 },
  'a header block over max_header_size': { bytes: hs('GET /ws HTTP/1.1', `${H}x-big: ${'a'.repeat(5000)}\r\n`), status: 431 },
  'a path that climbs out of its route': { bytes: hs('GET /ws/../admin/x HTTP/1.1', H), status: 403 },
  'a disguised path': { bytes: hs('GET /ws/%2e%2e/admin/x HTTP/1.1', H), status: 403 },
  'path parameters': { bytes: hs('GET /admin;x=1/ws HTTP/1.1', H), status: 403 },
  // A handshake is a GET without content (RFC 6455 §4.1); a plain GET may carry one.
  'a body (Content-Length)': { bytes: hs('GET /ws HTTP/1.1', `${H}content-length: 5\r\n`, 'hello'), status: 400, plain: 200 },
  'a body (chunked)': { bytes: hs('GET /ws HTTP/1.1', `${H}transfer-encoding: chunked\r\n`, '5\r\nhello\r\n0\r\n\r\n'), status: 400, plain: 200 },
};

interface Seen {
  upgrades: string[];
  requests: string[];
  headers: string[][];
}

/** An upstream that accepts every WebSocket handshake (so a wrongly admitted one would get 101) and records it. */
async function acceptingUpstream(t: Test) {
  const seen: Seen = { upgrades: [], requests: [], headers: [] };
  const up = await upstream(t, (req, res) => {
    seen.requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.end('plain\n');
  });
  const sockets = new Set<net.Socket>();
  up.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.upgrades.push(`${req.method} ${req.url}`);
    seen.headers.push(req.rawHeaders);
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  t.teardown(() => { for (const s of sockets) s.destroy(); });
  return { ...up, seen };
}

t.test('an Upgrade request passes the same admission as any request', async (t) => {
  const up = await acceptingUpstream(t);
  const d = await new Daemon(t).start({
    top: `
limits:
  max_header_size: 4k
  max_headers: 20`,
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /admin/
    return: { status: 403, body: "admin is internal\\n" }
  - path: /
    upstream: app
`,
  });
  const port = await d.port();

  for (const [name, { bytes, status, plain: plainStatus = status }] of Object.entries(CASES)) {
    t.test(`${name}: ${status} and a close, as for a plain request`, async (t) => {
      const r = await rawRequest(port, bytes, { timeoutMs: 10_000 });
      t.same(r.statuses, [status], `exactly one response, ${status}`);
      t.ok(r.closed, 'the connection is closed');
      // Read up to its first header block: an answer that keeps the connection open would hold us until keepalive_timeout.
      const plain = await rawRequest(port, bytes.replace(WS, ''), { timeoutMs: 10_000, until: (text) => text.includes('\r\n\r\n') });
      t.same(plain.statuses.slice(0, 1), [plainStatus], `a plain request of the same shape gets ${plainStatus}`);
    });
  }

  t.test('none of them reached the upstream, as a handshake or as a request', async (t) => {
    await new Promise((r) => setTimeout(r, 200));
    t.same(up.seen.upgrades, [], 'no handshake went upstream');
    t.notOk(up.seen.requests.some((l) => l.includes('/smuggled') || l.includes('admin')), `upstream saw: ${up.seen.requests.join(', ')}`);
  });

  t.test('a valid handshake still gets its 101, and the Host it forwards is the one the client sent', async (t) => {
    const r = await rawRequest(port, hs('GET /ws HTTP/1.1', H), { until: (text) => text.includes('\r\n\r\n') });
    t.same(r.statuses, [101]);
    const h = up.seen.headers.at(-1)!;
    t.equal(h[h.findIndex((x, k) => k % 2 === 0 && x.toLowerCase() === 'host') + 1], 'up.test');
  });

  t.test('every refused handshake has its access-log line', async (t) => {
    // Each case twice (the handshake and its plain twin), but for the plain twins that were served (200).
    const expected = Object.values(CASES).reduce((n, c) => n + ((c.plain ?? c.status) === 200 ? 1 : 2), 0);
    const lines = await waitFor('an access line per refused handshake', 10_000, () => {
      const l = d.lines(d.accessLog).filter((x) => x.status !== 101 && x.status !== 200);
      return l.length >= expected ? l : undefined;
    });
    t.equal(lines.length, expected, 'one line per answer, no more');
    t.ok(lines.some((l) => l.status === 405 && l.method === 'CONNECT'), 'CONNECT is logged');
    t.ok(lines.some((l) => l.status === 417), '417 is logged');
  });
});

/** Open descriptors of a process. */
function fds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

t.test('no handshake leaks the client socket, whatever the upstream answers and whatever follows the header block', async (t) => {
  // 200: an upstream that takes the handshake for a plain request; it closes each connection after answering.
  const plain = await upstream(t, (req, res) => {
    req.resume();
    res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' });
    res.end('not a websocket\n');
  });
  const silent = net.createServer((s) => { s.on('error', () => {}); }); // accepts, never answers: 504
  const silentSockets = new Set<net.Socket>();
  silent.on('connection', (s) => { silentSockets.add(s); s.on('close', () => silentSockets.delete(s)); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of silentSockets) s.destroy(); silent.close(); });
  const deadPort = await freePort();
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  plain:
    targets: [{ url: "${plain.url}" }]
  dead:
    targets: [{ url: "http://127.0.0.1:${deadPort}" }]
  silent:
    targets: [{ url: "http://127.0.0.1:${(silent.address() as net.AddressInfo).port}" }]
    response_timeout: 1s
routes:
  - { path: /plain/, upstream: plain }
  - { path: /dead/, upstream: dead }
  - { path: /silent/, upstream: silent }
`,
  });
  const port = await d.port();
  const [worker] = d.workerPids();
  // One complete exchange first: the worker opens its log files and the like lazily.
  const warm = await rawRequest(port, `GET /plain/warm-up HTTP/1.1\r\n${H}connection: close\r\n\r\n`, { timeoutMs: 30_000 });
  t.same(warm.statuses, [200], 'a plain request first');
  await waitFor('the warm-up connection closed in the worker', 30_000, async () => {
    const text = await (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
    return sampleValue(parseExposition(text).samples, 'baton_connections', { protocol: 'http1', state: 'active' }) === 0 ? true : undefined;
  });
  const start = fds(worker!);

  const extras: Record<string, string> = {
    'a pipelined request': `GET /next HTTP/1.1\r\n${H}\r\n`,
    'one byte': 'x',
    'a WebSocket frame': '\x81\x85\x01\x02\x03\x04iggkn',
  };
  const upstreams: Record<string, number> = { plain: 200, dead: 502, silent: 504 };
  for (const [kind, status] of Object.entries(upstreams)) {
    for (const [what, extra] of Object.entries(extras)) {
      const r = await rawRequest(port, hs(`GET /${kind}/ws HTTP/1.1`, H, extra), { timeoutMs: 30_000, until: (text) => /\r\n\r\n/.test(text) });
      t.same(r.statuses, [status], `${kind} upstream, then ${what}: ${status}`);
    }
    const body = await rawRequest(port, hs(`GET /${kind}/ws HTTP/1.1`, `${H}content-length: 5\r\n`, 'hello'), { timeoutMs: 30_000, until: (text) => /\r\n\r\n/.test(text) });
    t.same(body.statuses, [400], `${kind} upstream, a handshake with a body: 400`);
  }

  await waitFor('the worker back to its descriptors from before the handshakes', 30_000, () => (fds(worker!) <= start ? true : undefined));
  t.pass(`the worker holds ${start} descriptors again`);
  const gauges = await waitFor('the connection gauges back to zero', 30_000, async () => {
    const text = await (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
    const { samples } = parseExposition(text);
    const ws = sampleValue(samples, 'baton_connections', { protocol: 'websocket', state: 'active' });
    const h1 = sampleValue(samples, 'baton_connections', { protocol: 'http1', state: 'active' });
    return ws === 0 && h1 === 0 ? { ws, h1 } : undefined;
  });
  t.same(gauges, { ws: 0, h1: 0 }, 'no websocket or http1 connection counted');
});
