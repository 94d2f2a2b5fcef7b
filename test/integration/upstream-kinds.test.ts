/**
 * @module Upstreams on unix sockets and over HTTP/2 with prior knowledge, against the real daemon: HTTP/1.1 and
 * h2c on a socket file, requests with bodies multiplexed on one HTTP/2 connection, health checks on a socket,
 * and WebSocket tunnels to a unix-socket target.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { Daemon, waitFor, type Tap } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** A server on `where` (a socket path, or 127.0.0.1:0); counts the connections it accepts. */
async function serve(t: Tap, server: net.Server, where: string | null): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => (where !== null ? server.listen(where, r) : server.listen(0, '127.0.0.1', r)));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  const addr = server.address();
  return { port: typeof addr === 'object' && addr !== null ? addr.port : 0, connections: () => connections };
}

const echo: Handler = (req, res) => {
  let n = 0;
  req.on('data', (c: Buffer) => { n += c.length; });
  req.on('end', () => res.end(`${req.method} ${req.url} ${n} bytes over HTTP/${req.httpVersion}\n`));
};

function config(url: string, extra = ''): string {
  return `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${url}" }]${extra}
routes:
  - path: /
    upstream: app
`;
}

async function daemon(t: Tap, url: (dir: string) => string, extra = ''): Promise<{ d: Daemon; port: number }> {
  const d = new Daemon(t);
  await d.start({ body: config(url(d.dir), extra) });
  return { d, port: await d.port() };
}

t.test('an HTTP/1.1 upstream on a unix socket (unix:PATH, relative to the config file)', async (t) => {
  const d = new Daemon(t);
  await serve(t, http.createServer(echo as http.RequestListener), path.join(d.dir, 'app.sock'));
  await d.start({ body: config('unix:app.sock') });
  const port = await d.port();
  const r = await request(port, '/u', { method: 'POST', body: 'hello' });
  t.equal(r.body, 'POST /u 5 bytes over HTTP/1.1\n');
  const line = await d.waitForLine('the access line', (l) => l.path === '/u', 15_000, d.accessLog);
  t.equal(line.target, `unix:${path.join(d.dir, 'app.sock')}`, 'the target is logged as unix:PATH');
});

t.test('HTTP/2 with prior knowledge on a unix socket', async (t) => {
  const d = new Daemon(t);
  await serve(t, http2.createServer(echo as never), path.join(d.dir, 'h2.sock'));
  await d.start({ body: config(`unix:${path.join(d.dir, 'h2.sock')}`, '\n    protocol: http2') });
  const r = await request(await d.port(), '/h2', { method: 'PUT', body: 'abc' });
  t.equal(r.body, 'PUT /h2 3 bytes over HTTP/2.0\n');
});

t.test('h2c upstream: 30 concurrent uploads are multiplexed on one connection', async (t) => {
  const up = await serve(t, http2.createServer(echo as never), null);
  const { port } = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 30 });
  t.teardown(() => agent.destroy());
  const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => request(port, `/p${i}`, { method: 'POST', body: 'x'.repeat(1000 + i), agent })));
  t.strictSame(replies.map((r) => r.body), replies.map((_, i) => `POST /p${i} ${1000 + i} bytes over HTTP/2.0\n`));
  t.equal(up.connections(), 1, 'one HTTP/2 connection carried every request');
});

/**
 * nginx's keepalive_requests (1000 by default) for HTTP/2, at 10: after the 10th stream of a connection it sends
 * GOAWAY with that stream's id, which refuses the streams already on their way, then closes once it has answered.
 * Answers "METHOD PATH N bytes"; `sessions` lists the streams each connection saw, in order.
 */
function goawayAfter10(): { server: http2.Http2Server; sessions: Map<http2.Http2Session, http2.ServerHttp2Stream[]> } {
  const server = http2.createServer();
  const sessions = new Map<http2.Http2Session, http2.ServerHttp2Stream[]>();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const session = stream.session!;
    const seen = sessions.get(session) ?? [];
    sessions.set(session, seen);
    seen.push(stream);
    // Past the connection's 10th stream: refused with the GOAWAY below (nghttp2 refuses them so on its side).
    if (seen.length > 10) return;
    // The GOAWAY leaves a little later, so that the proxy has streams past the 10th on their way.
    if (seen.length === 10) {
      setTimeout(() => {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
        for (const s of seen.slice(10)) s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      }, 20);
    }
    let bytes = 0;
    stream.on('data', (c: Buffer) => { bytes += c.length; });
    stream.on('end', () => setTimeout(() => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200 });
      stream.end(`${String(headers[':method'])} ${String(headers[':path'])} ${bytes} bytes\n`);
      if (seen.indexOf(stream) === 9) session.close();
    }, 30));
  });
  return { server, sessions };
}

// Bodies: buffered past request_buffer_size (64k: in a file), buffered in memory, streamed (up to 64 KiB is kept
// for a try again).
for (const [buffering, size] of [['on', 100_000], ['on', 1000], ['off', 1000]] as const) t.test(`an h2c upstream that closes each connection after 10 requests (GOAWAY) fails none of 40 concurrent requests (request_buffering ${buffering}, ${size}-byte bodies)`, async (t) => {
  const { server, sessions } = goawayAfter10();
  const up = await serve(t, server, null);
  const d = new Daemon(t);
  await d.start({ body: `limits: { request_buffering: ${buffering} }\n${config(`http://127.0.0.1:${up.port}`, '\n    protocol: http2')}` });
  const port = await d.port();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
  t.teardown(() => agent.destroy());
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => i % 2 === 0
    ? request(port, `/g${i}`, { agent })
    : request(port, `/p${i}`, { method: 'POST', body: 'x'.repeat(size + i), agent })));
  t.strictSame(replies.map((r) => `${r.status} ${r.body}`), replies.map((_, i) => (i % 2 === 0 ? `200 GET /g${i} 0 bytes\n` : `200 POST /p${i} ${size + i} bytes\n`)));
  t.ok(up.connections() >= 4, `the upstream closed its connections after 10 streams (${up.connections()} connections)`);
  const refused = [...sessions.values()].reduce((n, seen) => n + Math.max(0, seen.length - 10), 0);
  t.ok(refused > 0, `streams past a GOAWAY were refused (${refused}), and went again on another connection`);
  t.same(d.lines().filter((l) => l.msg === 'upstream request failed').map((l) => `${String(l.code)}: ${String(l.error)}`), [], 'no request failed');
});

t.test('once three connections ended at 10 streams with first tries cut off, a new one carries at most 10 and none is refused', async (t) => {
  const { server, sessions } = goawayAfter10();
  const up = await serve(t, server, null);
  const { port } = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
  t.teardown(() => agent.destroy());
  const batch = async (tag: string): Promise<string[]> => (await Promise.all(Array.from({ length: 40 }, (_, i) => request(port, `/${tag}${i}`, { agent })))).map((r) => `${r.status} ${r.body}`);
  const expected = (tag: string): string[] => Array.from({ length: 40 }, (_, i) => `200 GET /${tag}${i} 0 bytes\n`);
  /** Bursts of 40 until one whose new connections all carried at most 10 streams (at most `max` bursts). */
  const until = async (max: number): Promise<number> => {
    for (let i = 1; i <= max; i++) {
      const before = new Set(sessions.keys());
      const tag = `b${i}-`;
      t.strictSame(await batch(tag), expected(tag), `burst ${i}: all 200`);
      if ([...sessions].every(([s, seen]) => before.has(s) || seen.length <= 10)) return i;
    }
    return -1;
  };
  // Each burst's first connection has first tries cut off (the streams sent again after it teach nothing); how
  // many bursts it takes depends on how each one falls on the connections left from the one before.
  const learned = await until(10);
  t.ok(learned >= 2, `it learned, in ${learned} bursts`);
  // (The server sees only the streams that reached it before its GOAWAY left; baton counts those it sent.)
  t.ok([...sessions.values()].some((seen) => seen.length > 10), 'streams were cut off while it learned');
  const before = new Set(sessions.keys());
  t.strictSame(await batch('d'), expected('d'));
  t.strictSame(await batch('e'), expected('e'));
  const later = [...sessions].filter(([s]) => !before.has(s)).map(([, seen]) => seen.length);
  t.ok(later.length >= 7, `new connections for the next 80 (${later.length})`);
  t.same(later.filter((n) => n > 10), [], 'none was given more than 10 streams: none was refused');
});

/** An HTTP/2 target whose streams `onStream` handles (their errors ignored), counting them. */
function h2Target(onStream: (stream: http2.ServerHttp2Stream) => void): { server: http2.Http2Server; streams: () => number } {
  const server = http2.createServer();
  let streams = 0;
  server.on('stream', (stream) => {
    streams++;
    stream.on('error', () => {});
    onStream(stream);
  });
  return { server, streams: () => streams };
}

t.test('an h2c upstream that refuses every stream gets 6 tries of a request, then the client gets 502', async (t) => {
  const { server, streams } = h2Target((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
  const up = await serve(t, server, null);
  const { d, port } = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2');
  t.equal((await request(port, '/r')).status, 502);
  const failed = await d.waitForLine('the failure', (l) => l.msg === 'upstream request failed');
  t.equal(failed.code, 'BATON_H2_REFUSED_STREAM');
  t.equal(streams(), 6, 'the upstream saw 6 streams');
});

t.test('a stream refused after the retry budget (retry.timeout) is spent is not sent again: 502; within it, it is', async (t) => {
  // Each connection's first stream waits 400 ms, then is refused (REFUSED_STREAM: nothing was processed). Later
  // streams are answered at once.
  const { server, streams } = h2Target((stream) => {
    const session = stream.session as http2.ServerHttp2Session & { refusedOne?: boolean };
    if (session.refusedOne !== true) {
      session.refusedOne = true;
      setTimeout(() => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM), 400);
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end('answered\n');
  });
  const up = await serve(t, server, null);
  const { d, port } = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2\n    retry: { timeout: 200ms }');
  t.equal((await request(port, '/spent')).status, 502, 'refused at 400 ms, with a budget of 200 ms');
  const failed = await d.waitForLine('the failure', (l) => l.msg === 'upstream request failed');
  t.equal(failed.code, 'BATON_H2_REFUSED_STREAM');
  t.equal(streams(), 1, 'not sent again');

  const within = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2\n    retry: { timeout: 5s }');
  const r = await request(within.port, '/within');
  t.equal(r.status, 200, 'refused at 400 ms, with a budget of 5 s: sent again');
  t.equal(r.body, 'answered\n');
});

t.test('a stream refused on a connection with keepalive_timeout 0 goes again on a new connection', async (t) => {
  // The refused stream was its connection's only one, so the pool closes that connection at once: the try again
  // must not be put on it.
  const server = http2.createServer();
  let streams = 0;
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    if (++streams === 1) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end('second stream\n');
  });
  const up = await serve(t, server, null);
  const { port } = await daemon(t, () => `http://127.0.0.1:${up.port}`, '\n    protocol: http2\n    keepalive_timeout: 0s');
  const r = await request(port, '/k');
  t.equal(r.status, 200);
  t.equal(r.body, 'second stream\n');
  t.ok(up.connections() >= 2, `a new connection (${up.connections()})`);
});

t.test('POSTs past the last stream of a GOAWAY with an error go again on a new connection', async (t) => {
  // The first connection answers its first stream, then sends GOAWAY(INTERNAL_ERROR, that stream) and closes:
  // Node tears the connection down with every stream on it, but those past the GOAWAY's last were not processed.
  const server = http2.createServer();
  let first: http2.Http2Session | null = null;
  let onFirst = 0;
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const session = stream.session!;
    first ??= session;
    const answer = (): void => {
      stream.respond({ ':status': 200 });
      stream.end(`${String(headers[':path'])}\n`);
    };
    if (session !== first) return void stream.on('end', answer).resume();
    if (++onFirst > 1) return; // never answered: the GOAWAY below leaves them out
    stream.resume();
    // Its answer goes out whole first (GOAWAY is a control frame: nghttp2 would send it ahead of the DATA).
    stream.on('close', () => {
      session.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, stream.id);
      setTimeout(() => session.destroy(), 20);
    });
    setTimeout(answer, 100);
  });
  const up = await serve(t, server, null);
  const d = new Daemon(t);
  await d.start({ body: config(`http://127.0.0.1:${up.port}`, '\n    protocol: http2') });
  const port = await d.port();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.teardown(() => agent.destroy());
  const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => request(port, `/p${i}`, { method: 'POST', body: 'x'.repeat(100), agent })));
  t.strictSame(replies.map((r) => `${r.status} ${r.body}`), replies.map((_, i) => `200 /p${i}\n`));
  t.ok(onFirst >= 2, `streams past the GOAWAY's last were on the first connection (${onFirst - 1})`);
});

t.test('health checks reach a unix-socket target (and an h2c one) the way requests do', async (t) => {
  const d = new Daemon(t);
  const seen: string[] = [];
  const handler: Handler = (req, res) => {
    seen.push(`${req.url} HTTP/${req.httpVersion}`);
    res.end('ok');
  };
  await serve(t, http.createServer(handler as http.RequestListener), path.join(d.dir, 'a.sock'));
  await serve(t, http2.createServer(handler as never), path.join(d.dir, 'b.sock'));
  await d.start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  one:
    targets: [{ url: "unix:a.sock" }]
    health_check: { path: /health-1, interval: 200ms }
  two:
    protocol: http2
    targets: [{ url: "unix:b.sock" }]
    health_check: { path: /health-2, interval: 200ms }
routes:
  - path: /
    upstream: one
`,
  });
  await waitFor('checks on both sockets', 30_000, () => (seen.includes('/health-1 HTTP/1.1') && seen.includes('/health-2 HTTP/2.0') ? true : undefined));
  t.notOk(d.lines().some((l) => l.msg === 'health check failed' || l.msg === 'health check: target taken out'), 'every check passed');
});

t.test('a WebSocket handshake reaches a unix-socket target', async (t) => {
  const d = new Daemon(t);
  const server = http.createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (req, socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Path: ${req.url}\r\n\r\n`);
    socket.on('data', (c: Buffer) => socket.write(c));
  });
  await serve(t, server, path.join(d.dir, 'ws.sock'));
  await d.start({ body: config('unix:ws.sock') });
  const port = await d.port();
  const net = await import('node:net');
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => { s.destroy(); });
  let got = '';
  s.on('data', (c: Buffer) => { got += c.toString('latin1'); });
  s.write('GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await waitFor('the 101', 15_000, () => (got.includes('\r\n\r\n') ? true : undefined));
  t.match(got, /^HTTP\/1\.1 101 /);
  t.match(got, /x-path: \/chat/i);
  s.write('ping');
  await waitFor('the echo through the tunnel', 15_000, () => (got.endsWith('ping') ? true : undefined));
  t.pass('bytes went through the tunnel both ways');
});
