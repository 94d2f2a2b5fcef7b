/**
 * Upstream faults against the real daemon, with a purpose-built misbehaving upstream (a raw TCP server that
 * does exactly the wrong thing a path asks for): refused, reset or closed before the headers, reset in the
 * middle of the body, headers too slow, silent after the headers, wrong Content-Length, oversized headers,
 * ambiguous framing; the keep-alive race; passive and active health, and every target down.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { rawRequest } from '../helpers/raw.js';

interface Bad {
  port: number;
  /** Request lines seen, with the id of the connection each came on. */
  seen: { line: string; conn: number }[];
}

/** A raw HTTP/1.1 upstream whose behaviour is chosen by the request path. */
async function misbehaving(t: Tap): Promise<Bad> {
  const seen: Bad['seen'] = [];
  const sockets = new Set<net.Socket>();
  let conns = 0;
  const server = net.createServer((socket) => {
    const conn = ++conns;
    let onConn = 0;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.slice(0, end);
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        const bodyLen = cl ? Number(cl[1]) : 0;
        if (buf.length < end + 4 + bodyLen) return;
        buf = buf.slice(end + 4 + bodyLen);
        const line = head.slice(0, head.indexOf('\r\n'));
        const path = line.split(' ')[1]!;
        seen.push({ line, conn });
        onConn++;
        act(socket, path, onConn);
      }
    });
  });
  const ok = (socket: net.Socket, body: string, extra = '') =>
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`);
  const act = (socket: net.Socket, path: string, onConn: number): void => {
    switch (path.split('?')[0]) {
      case '/reset-before-headers': socket.resetAndDestroy(); return;
      case '/close-before-headers': socket.end(); return;
      case '/reset-mid-body-cl':
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n${'a'.repeat(1000)}`);
        setTimeout(() => socket.resetAndDestroy(), 50);
        return;
      case '/reset-mid-body-chunked':
        socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n${'b'.repeat(1000)}\r\n`);
        setTimeout(() => socket.resetAndDestroy(), 50);
        return;
      case '/slow-headers': return; // never answers
      case '/silent-after-headers':
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n${'c'.repeat(10)}`);
        return;
      case '/short-cl':
        socket.end(`HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n${'d'.repeat(50)}`);
        return;
      case '/long-cl':
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloWORLD-THAT-IS-TOO-MUCH');
        return;
      case '/big-headers':
        socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'e'.repeat(40 * 1024)}\r\ncontent-length: 2\r\n\r\nok`);
        return;
      case '/cl-and-te':
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
        return;
      case '/race':
        // The keep-alive race, made certain: the second request on any connection meets a reset.
        if (onConn > 1) socket.resetAndDestroy();
        else ok(socket, 'fresh', 'keep-alive: timeout=60\r\n');
        return;
      default: ok(socket, `ok ${path}`);
    }
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, seen };
}

type Tap = { teardown(fn: () => unknown): void };

/** A port that refuses connections. */
async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A small HTTP upstream that says who it is and can be told to fail its health checks. */
async function named(t: Tap, name: string, port = 0): Promise<{ port: number; hits: number; healthy: boolean; server: http.Server }> {
  const state = { port: 0, hits: 0, healthy: true, server: null as unknown as http.Server };
  state.server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.statusCode = state.healthy ? 200 : 503;
      res.end(state.healthy ? 'fine' : 'sick');
      return;
    }
    state.hits++;
    res.end(name);
  });
  await new Promise<void>((r) => state.server.listen(port, '127.0.0.1', r));
  state.port = (state.server.address() as net.AddressInfo).port;
  t.teardown(() => {
    state.server.closeAllConnections();
    return new Promise<void>((r) => state.server.close(() => r()));
  });
  return state;
}

/** A request through the daemon on a fresh connection; resolves the status and body, or the error code. */
function get(port: number, path: string, method = 'GET', body?: string): Promise<{ status: number; body: string; ms: number } | { error: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, timeout: 8000 }, (res) => {
      let b = '';
      res.setEncoding('latin1');
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, ms: Date.now() - t0 }));
      res.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message, ms: Date.now() - t0 }));
      res.on('aborted', () => resolve({ error: 'aborted', ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message, ms: Date.now() - t0 }));
    req.end(body);
  });
}

t.test('a misbehaving upstream never makes a broken response look complete', async (t) => {
  const bad = await misbehaving(t);
  const refused = await refusedPort();
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
  - listen: 127.0.0.3:0
    h2c: true
upstreams:
  bad:
    targets: [{ url: "http://127.0.0.1:${bad.port}" }]
    response_timeout: 1s
    idle_timeout: 1s
  refused:
    targets: [{ url: "http://127.0.0.1:${refused}" }]
routes:
  - path: /refused
    upstream: refused
  - path: /
    upstream: bad
`,
  });
  const port = await d.port('127.0.0.1:0');
  const h2cPort = await d.port('127.0.0.3:0');
  const attempts = (path: string) => bad.seen.filter((s) => s.line.split(' ')[1] === path);

  t.test('a refused connection answers 502 at once', async (t) => {
    const r = await get(port, '/refused');
    t.match(r, { status: 502 });
    await d.waitForLine('the refusal logged', (l) => l.code === 'ECONNREFUSED' && l.path === '/refused', 30_000);
  });

  t.test('a reset before the headers answers 502 after one retry for GET, and no retry for POST or PUT with a body', async (t) => {
    t.match(await get(port, '/reset-before-headers'), { status: 502 });
    t.equal(attempts('/reset-before-headers').length, 2, 'GET: tried twice');
    const [a, b] = attempts('/reset-before-headers');
    t.not(a!.conn, b!.conn, 'the retry went out on a new connection');
    t.match(await get(port, '/reset-before-headers?post', 'POST', 'x=1'), { status: 502 });
    t.equal(attempts('/reset-before-headers?post').length, 1, 'POST: tried once');
    t.match(await get(port, '/reset-before-headers?put', 'PUT', 'x=1'), { status: 502 });
    t.equal(attempts('/reset-before-headers?put').length, 1, 'PUT with a body: tried once');
    t.match(await get(port, '/close-before-headers'), { status: 502 }, 'a close (FIN) before the headers: 502 too');
  });

  t.test('a reset in the middle of the body cuts the client connection: never a short body that looks complete', async (t) => {
    const cl = await rawRequest(port, `GET /reset-mid-body-cl HTTP/1.1\r\nhost: x\r\n\r\n`);
    t.same(cl.statuses, [200]);
    t.ok(cl.closed, 'the connection is closed');
    const body = cl.text.slice(cl.text.indexOf('\r\n\r\n') + 4);
    t.match(cl.text, /content-length: 100000/i);
    t.ok(body.length < 100000, `only ${body.length} of 100000 bytes, and then the close`);
    const ch = await rawRequest(port, `GET /reset-mid-body-chunked HTTP/1.1\r\nhost: x\r\n\r\n`);
    t.same(ch.statuses, [200]);
    t.ok(ch.closed);
    t.notOk(ch.text.endsWith('0\r\n\r\n'), 'no last chunk: the client knows the body is incomplete');
    const viaNode = await get(port, '/reset-mid-body-cl');
    t.match(viaNode, { error: String }, 'an HTTP client reports an error, not a response');
  });

  t.test('over HTTP/2 a reset mid-body resets the stream with INTERNAL_ERROR', async (t) => {
    const session = http2.connect(`http://127.0.0.3:${h2cPort}`);
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    const code = await new Promise<number>((resolve) => {
      const req = session.request({ ':path': '/reset-mid-body-cl' });
      req.resume();
      req.on('error', () => {}); // the reset itself: what matters is its code
      req.on('close', () => resolve(req.rstCode));
      req.end();
    });
    t.equal(code, http2.constants.NGHTTP2_INTERNAL_ERROR);
  });

  t.test('headers slower than response_timeout answer 504', async (t) => {
    const r = await get(port, '/slow-headers');
    t.match(r, { status: 504 });
    // A lower bound only: the timeout did not fire early. How late it fires depends on the machine's load.
    t.ok(r.ms >= 900, `not before response_timeout (after ${r.ms} ms)`);
  });

  t.test('an upstream silent after the headers is cut after idle_timeout', async (t) => {
    // The upstream never sends more: only idle_timeout (1s) can end this before the client's 30 s deadline.
    const r = await rawRequest(port, `GET /silent-after-headers HTTP/1.1\r\nhost: x\r\n\r\n`, { timeoutMs: 30_000 });
    t.same(r.statuses, [200]);
    t.ok(r.closed, 'cut');
    t.ok(r.ms >= 900, `not before idle_timeout (after ${r.ms} ms)`);
  });

  t.test('a Content-Length the upstream does not keep: too short is cut, too long is trimmed to it', async (t) => {
    const short = await rawRequest(port, `GET /short-cl HTTP/1.1\r\nhost: x\r\n\r\n`);
    t.same(short.statuses, [200]);
    t.ok(short.closed, 'cut, since only 50 of 100 bytes came');
    const long = await rawRequest(port, `GET /long-cl HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    t.same(long.statuses, [200]);
    t.equal(long.text.slice(long.text.indexOf('\r\n\r\n') + 4), 'hello', 'exactly content-length bytes reach the client');
    t.match(await get(port, '/after-long-cl'), { status: 200, body: 'ok /after-long-cl' }, 'and the extra bytes poison no later response');
  });

  t.test('oversized response headers and ambiguous response framing answer 502', async (t) => {
    t.match(await get(port, '/big-headers'), { status: 502 });
    t.match(await get(port, '/cl-and-te'), { status: 502 });
  });

  t.test('the keep-alive race: GET is retried once on a new connection, POST is not', async (t) => {
    t.match(await get(port, '/race'), { status: 200, body: 'fresh' }, 'first request opens a connection');
    t.match(await get(port, '/race'), { status: 200, body: 'fresh' }, 'the reused connection is reset; the retry succeeds');
    const races = attempts('/race');
    t.equal(races.length, 3);
    t.equal(races[1]!.conn, races[0]!.conn, 'the second request went out on the kept-alive connection');
    t.not(races[2]!.conn, races[1]!.conn, 'the retry on a new one');
    t.match(await get(port, '/race?prime'), { status: 200 });
    t.match(await get(port, '/race?post', 'POST', 'a=1'), { status: 502 }, 'POST on the stale connection: 502');
    t.equal(attempts('/race?post').length, 1, 'never retried');
  });
});

t.test('passive health: max_fails failures within fail_timeout take a target out, and it comes back after fail_timeout', async (t) => {
  const a = await named(t, 'a');
  const bPort = await refusedPort();
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  pair:
    targets: [{ url: "http://127.0.0.1:${a.port}" }, { url: "http://127.0.0.1:${bPort}" }]
    max_fails: 2
    fail_timeout: 2s
routes:
  - path: /
    upstream: pair
`,
  });
  const port = await d.port();
  const connectFails = () => d.lines().filter((l) => l.msg === 'upstream connect failed, trying the next target').length;
  for (let i = 0; i < 8; i++) t.match(await get(port, `/p${i}`), { status: 200, body: 'a' }, 'every request fails over to a');
  await d.waitForLine('the take-out line', (l) => l.msg === 'upstream target taken out for fail_timeout after max_fails failures');
  t.equal(connectFails(), 2, 'b was tried exactly max_fails times, then skipped');
  for (let i = 0; i < 6; i++) await get(port, `/q${i}`);
  t.equal(connectFails(), 2, 'still skipped within fail_timeout');
  const b = await named(t, 'b', bPort);
  await new Promise((r) => setTimeout(r, 2100));
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await get(port, `/r${i}`);
    if ('body' in r) bodies.push(r.body);
  }
  t.ok(bodies.includes('b'), `b gets traffic again after fail_timeout (${bodies.join(',')})`);
  t.ok(b.hits > 0);
});

t.test('active health checks take a target out and bring it back; with every target down the answer is an immediate 502', async (t) => {
  const c = await named(t, 'c');
  const e = await named(t, 'e');
  // Accepts connections and never answers: without health checks every request would wait response_timeout.
  const holes = new Set<net.Socket>();
  let holeBytes = '';
  const blackhole = net.createServer((s) => { holes.add(s); s.on('error', () => {}); s.on('data', (c: Buffer) => { holeBytes += c.toString('latin1'); }); });
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of holes) s.destroy();
    return new Promise<void>((r) => blackhole.close(() => r()));
  });
  const holePort = (blackhole.address() as net.AddressInfo).port;
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  checked:
    targets: [{ url: "http://127.0.0.1:${c.port}" }, { url: "http://127.0.0.1:${e.port}" }]
    health_check: { path: /health, interval: 200ms, timeout: 3s, fails: 1, passes: 2 }
  dead:
    targets: [{ url: "http://127.0.0.1:${holePort}" }, { url: "http://127.0.0.1:${holePort}" }]
    response_timeout: 5s
    health_check: { path: /health, interval: 200ms, timeout: 200ms }
routes:
  - path: /dead/
    upstream: dead
  - path: /
    upstream: checked
`,
  });
  const port = await d.port();
  const spread = async (n: number) => {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await get(port, `/s${i}`);
      const k = 'body' in r ? r.body : r.error;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };
  t.same(await spread(6), { c: 3, e: 3 }, 'both targets serve while healthy');
  e.healthy = false;
  await d.waitForLine('e taken out', (l) => l.msg === 'health check: target taken out' && String(l.target).endsWith(`:${e.port}`), 5000);
  t.same(await spread(6), { c: 6 }, 'only c serves once e fails its check');
  e.healthy = true;
  await d.waitForLine('e back', (l) => l.msg === 'health check: target is back' && String(l.target).endsWith(`:${e.port}`), 5000);
  t.same(await spread(6), { c: 3, e: 3 }, 'e serves again after `passes` good checks');

  await d.waitForLine('the blackholed targets taken out', (l) => l.msg === 'health check: target taken out' && String(l.target).endsWith(`:${holePort}`), 5000);
  await waitFor('both dead targets out', 3000, () => (d.lines().filter((l) => l.msg === 'health check: target taken out' && String(l.target).endsWith(`:${holePort}`)).length >= 2 ? true : undefined));
  const r = await get(port, '/dead/x');
  t.match(r, { status: 502 }, 'every target down: 502');
  // The witness is that nothing was sent to a dead target (a wait there would end only at response_timeout).
  t.notOk(holeBytes.includes('GET /dead/x '), `the request never went to a dead target (answered after ${r.ms} ms)`);
  await d.waitForLine('the no-live-target line', (l) => l.msg === 'no live upstream target: every target is down');
});
