/** @module WebSocket tunnels through the handler's `upgrade()`, against real upstream sockets. */
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { deadOrigin, makeConfig, raw, request, route, startProxy, startUpstream, until, upstream } from './config-fixture.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');

function handshake(path = '/ws', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n${extra}\r\n`;
}

/** An upstream that accepts WebSocket handshakes and echoes every byte back; it records the handshake headers. */
async function echoWsUpstream(t: Test) {
  const seen: http.IncomingHttpHeaders[] = [];
  const sockets = new Set<net.Socket>();
  const up = await startUpstream(t, (_req, res) => res.writeHead(426).end(), (server) => {
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push(req.headers);
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`);
      socket.pipe(socket);
    });
  });
  t.teardown(() => { for (const s of sockets) s.destroy(); });
  return { ...up, seen, sockets };
}

/** Open a tunnel: handshake, wait for the 101 head; resolves with the socket and the response head. */
function openTunnel(t: Test, port: number, path = '/ws'): Promise<{ socket: net.Socket; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    t.teardown(() => { socket.destroy(); });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no handshake answer')), 5000);
    socket.on('error', reject);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ socket, head: buf.subarray(0, end).toString('latin1'), rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.write(handshake(path));
  });
}

function readBytes(socket: net.Socket, n: number, initial: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = initial;
    if (buf.length >= n) return resolve(buf);
    const timer = setTimeout(() => reject(new Error(`got ${buf.length} of ${n} bytes`)), 5000);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(buf);
      }
    };
    socket.on('data', onData);
  });
}

t.test('a WebSocket handshake gets the upstream 101 and bytes are echoed both ways through the tunnel', async (t) => {
  const up = await echoWsUpstream(t);
  const p = await startProxy(t, makeConfig([upstream('ws', [up.origin])], [route('/ws', { upstream: 'ws' })]));
  const { socket, head, rest } = await openTunnel(t, p.port);
  t.match(head, /^HTTP\/1\.1 101 /);
  t.match(head, new RegExp(`sec-websocket-accept: ${ACCEPT.replace(/[+/=]/g, '\\$&')}`, 'i'));
  t.match(head, /upgrade: websocket/i);
  // A masked text frame "hello" (client → server), as a browser would send it; the echo upstream returns it as is.
  const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, ...Buffer.from('hello').map((b, i) => b ^ [1, 2, 3, 4][i % 4]!)]);
  socket.write(frame);
  t.same(await readBytes(socket, frame.length, rest), frame, 'frame echoed back');
  const big = Buffer.alloc(300_000, 9);
  socket.write(big);
  const back = await readBytes(socket, big.length);
  t.equal(back.length, big.length, 'large payloads flow both ways');
  t.equal(p.handler.openTunnels(), 1);
  const h = up.seen[0]!;
  t.equal(h.upgrade, 'websocket');
  t.match(h.connection, /upgrade/i);
  t.equal(h['x-forwarded-for'], '127.0.0.1');
  t.equal(h.via, '1.1 baton');
  t.ok(h['x-request-id']);
  t.equal(h.host, 'ws.test');
  socket.end();
  await until(() => p.handler.openTunnels() === 0, 3000, 'the tunnel to close');
  await until(() => p.mem.access.length === 1);
  t.match(p.mem.access[0], { status: 101, path: '/ws', upstream: 'ws', target: up.origin.slice('http://'.length) });
});

t.test('a WebSocket to an upstream that refuses connections gets a raw 502', async (t) => {
  const dead = await deadOrigin();
  const p = await startProxy(t, makeConfig([upstream('ws', [dead])], [route('/', { upstream: 'ws' })]));
  const got = await raw(p.port, handshake());
  t.match(got, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  t.match(got, /connection: close\r\n/);
  t.match(got, /content-length: 16\r\n/);
  t.match(got, /\r\n\r\n502 Bad Gateway\n$/);
  await until(() => p.mem.errors.some((l) => l.msg === 'websocket upstream failed' && l.code === 'ECONNREFUSED'));
  await until(() => p.handler.openTunnels() === 0);
});

t.test('a refused handshake (non-101) is relayed to the client', async (t) => {
  const up = await startUpstream(t, (_q, s) => s.end(), (server) => {
    server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nKeep-Alive: timeout=5\r\n\r\nnope!\n');
    });
  });
  const p = await startProxy(t, makeConfig([upstream('ws', [up.origin])], [route('/', { upstream: 'ws' })]));
  const got = await raw(p.port, handshake());
  t.match(got, /^HTTP\/1\.1 403 Forbidden\r\n/);
  t.notMatch(got, /keep-alive: timeout/i);
  t.match(got, /\r\n\r\nnope!\n$/);
});

t.test('a handshake the upstream does not answer in response_timeout gets a raw 504', async (t) => {
  const up = await startUpstream(t, (_q, s) => s.end(), (server) => {
    server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => { socket.on('error', () => {}); });
  });
  const p = await startProxy(t, makeConfig([upstream('ws', [up.origin], { responseTimeout: 200 })], [route('/', { upstream: 'ws' })]));
  const got = await raw(p.port, handshake());
  t.match(got, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
});

t.test('return routes and unrouted paths answer an upgrade request with a raw response', async (t) => {
  const p = await startProxy(t, makeConfig([], [route('/gone', { return: { status: 410, body: 'gone\n' } })]));
  const gone = await raw(p.port, handshake('/gone'));
  t.match(gone, /^HTTP\/1\.1 410 Gone\r\n/);
  t.match(gone, /\r\n\r\ngone\n$/);
  const none = await raw(p.port, handshake('/elsewhere'));
  t.match(none, /^HTTP\/1\.1 404 Not Found\r\n/);
});

t.test('closeTunnels closes every open tunnel', async (t) => {
  const up = await echoWsUpstream(t);
  const p = await startProxy(t, makeConfig([upstream('ws', [up.origin])], [route('/', { upstream: 'ws' })]));
  const a = await openTunnel(t, p.port);
  const b = await openTunnel(t, p.port);
  t.equal(p.handler.openTunnels(), 2);
  const closed = Promise.all([a, b].map((x) => new Promise((r) => x.socket.once('close', r))));
  p.handler.closeTunnels();
  await closed;
  await until(() => p.handler.openTunnels() === 0 && up.sockets.size === 0, 3000, 'both sides to close');
  t.pass('client and upstream sockets closed');
});

t.test('an upstream that closes the tunnel closes the client side', async (t) => {
  const up = await echoWsUpstream(t);
  const p = await startProxy(t, makeConfig([upstream('ws', [up.origin])], [route('/', { upstream: 'ws' })]));
  const { socket } = await openTunnel(t, p.port);
  await until(() => up.sockets.size === 1);
  const closed = new Promise((r) => socket.once('close', r));
  for (const s of up.sockets) s.end();
  await closed;
  await until(() => p.handler.openTunnels() === 0);
  t.pass('client socket closed');
});

t.test('an upgrade other than websocket (h2c) is answered as the plain HTTP request it also is', async (t) => {
  const up = await startUpstream(t, (req, res) => res.end(`plain ${req.url} upgrade=${req.headers.upgrade ?? 'none'}`));
  const p = await startProxy(t, makeConfig([upstream('app', [up.origin])], [route('/', { upstream: 'app' })]));
  const got = await raw(p.port, 'GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n');
  t.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(got, /connection: close\r\n/i);
  t.match(got, /plain \/x upgrade=none$/);
  const r = await request(p.port, { path: '/after' });
  t.equal(r.status, 200, 'the server is fine afterwards');
});

t.test('http-proxy is loaded and used without a deprecation warning, and util._extend is left as it was', async (t) => {
  // In a child: a module registry of its own, where http-proxy is not loaded yet.
  const moduleUrl = new URL('../../../lib/worker/websocket.js', import.meta.url).href;
  const script = `
    import util from 'node:util';
    import { createRequire } from 'node:module';
    const before = util._extend;
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code ?? w.name));
    const { loadHttpProxy } = await import(${JSON.stringify(moduleUrl)});
    loadHttpProxy();
    const common = createRequire(${JSON.stringify(moduleUrl)})('http-proxy/lib/http-proxy/common.js');
    const out = {};
    common.setupOutgoing(out, { target: { protocol: 'http:', host: '127.0.0.1', port: 1 }, headers: { 'x-a': '1' } }, { headers: { host: 'h', 'x-b': '2' }, url: '/p', method: 'GET' });
    await new Promise(setImmediate); // a warning is emitted on the next tick
    console.log(JSON.stringify({ warnings, restored: util._extend === before, headers: out.headers }));
  `;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out) as { warnings: string[]; restored: boolean; headers: Record<string, string> };
  t.same(r.warnings, [], 'no process warning');
  t.ok(r.restored, "util._extend is Node's own again");
  t.match(r.headers, { host: 'h', 'x-b': '2', 'x-a': '1' }, 'headers copied as util._extend copies them');
});
