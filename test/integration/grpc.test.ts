/**
 * @module gRPC end to end through the real daemon: a @grpc/grpc-js server behind `protocol: http2`, a grpc-js
 * client on baton's h2c listener and on its TLS listener. Unary and streaming calls in both directions, status and
 * message relayed from trailers, deadlines, baton's own failures as gRPC statuses, and an HTTP/1.1 client turned
 * away from an HTTP/2 gRPC route.
 */
import http from 'node:http';
import http2 from 'node:http2';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Daemon, waitFor, type Tap } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { echoClient, grpc, startEchoServer, unary, type EchoServer, type Msg } from '../helpers/grpc.js';

const LISTENERS = `
  - listen: 127.0.0.1:0
    h2c: true
  - listen: 127.0.0.3:0
    tls: { cert: site.crt, key: site.key }`;

function config(targets: string, extra = '', responseTimeout = '5s'): string {
  return `
listeners:${LISTENERS}
upstreams:
  grpc:
    protocol: http2
    targets: [${targets}]
    response_timeout: ${responseTimeout}${extra}
routes:
  - path: /
    upstream: grpc
`;
}

async function start(t: Tap, targets: string, extra = '', responseTimeout?: string): Promise<{ d: Daemon; h2c: string; tlsPort: number; ca: string }> {
  const d = new Daemon(t);
  makeCerts(d.dir);
  await d.start({ body: config(targets, extra, responseTimeout) });
  const h2c = `127.0.0.1:${await d.port('127.0.0.1:0')}`;
  const tlsPort = await d.port('127.0.0.3:0');
  return { d, h2c, tlsPort, ca: fs.readFileSync(path.join(d.dir, 'ca.crt'), 'utf8') };
}

type Client = ReturnType<typeof echoClient>;

type Started = Awaited<ReturnType<typeof start>> & { up: EchoServer };
let shared: Promise<Started> | null = null;

/**
 * One echo server and daemon (default config) for the cases that only need a working gRPC route: each brings its
 * own clients and counts only the calls it makes, so they do not interfere; stopped when the file ends.
 */
function sharedDaemon(): Promise<Started> {
  shared ??= (async () => {
    const up = await startEchoServer(t);
    return { up, ...(await start(t, `{ url: "http://${up.address}" }`)) };
  })();
  return shared;
}

function serverStream(c: Client, msg: Partial<Msg>): Promise<{ texts: string[]; status: grpc.StatusObject | null; error: grpc.ServiceError | null }> {
  return new Promise((resolve) => {
    const texts: string[] = [];
    let status: grpc.StatusObject | null = null;
    const call = c.ServerStream!({ text: '', n: 0, delay: 0, ...msg }, { deadline: Date.now() + 20_000 }) as grpc.ClientReadableStream<Msg>;
    call.on('data', (m: Msg) => texts.push(m.text));
    call.on('status', (s: grpc.StatusObject) => { status = s; });
    call.on('error', (error: grpc.ServiceError) => resolve({ texts, status, error }));
    call.on('end', () => setImmediate(() => resolve({ texts, status, error: null })));
  });
}

function clientStream(c: Client, count: number): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const call = c.ClientStream!({ deadline: Date.now() + 20_000 }, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res))) as grpc.ClientWritableStream<Msg>;
    for (let i = 0; i < count; i++) call.write({ text: 'x'.repeat(1000), n: i, delay: 0 });
    call.end();
  });
}

/** Bidi: each message is sent only after the previous echo came back (so both directions are open at once). */
function pingPong(c: Client, rounds: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const got: string[] = [];
    const call = c.Bidi!({ deadline: Date.now() + 20_000 }) as grpc.ClientDuplexStream<Msg, Msg>;
    call.on('data', (m: Msg) => {
      got.push(m.text);
      if (got.length < rounds) call.write({ text: `m${got.length}`, n: got.length, delay: 0 });
      else call.end();
    });
    call.on('error', reject);
    call.on('end', () => resolve(got));
    call.write({ text: 'm0', n: 0, delay: 0 });
  });
}

t.test('unary and streaming calls in both directions work through h2c and TLS listeners', async (t) => {
  const { h2c, tlsPort, ca } = await sharedDaemon();
  const clients: [string, Client][] = [
    ['h2c', echoClient(t, h2c)],
    ['TLS', echoClient(t, `127.0.0.3:${tlsPort}`, { ca, serverName: 'site.test' })],
  ];
  for (const [name, c] of clients) {
    const u = await unary(c, { text: `hello over ${name}` });
    t.same(u, { ok: true, msg: { text: `hello over ${name}`, n: 0, delay: 0 } }, `${name}: unary`);
    const s = await serverStream(c, { text: 's', n: 5, delay: 20 });
    t.strictSame(s.texts, ['s-0', 's-1', 's-2', 's-3', 's-4'], `${name}: server streaming`);
    t.equal(s.status?.code, grpc.status.OK, `${name}: grpc-status 0 relayed from the trailers`);
    const cs = await clientStream(c, 50);
    t.same(cs, { text: 'bytes=50000', n: 50, delay: 0 }, `${name}: client streaming`);
    t.strictSame(await pingPong(c, 5), ['echo:m0', 'echo:m1', 'echo:m2', 'echo:m3', 'echo:m4'], `${name}: bidirectional, one message at a time`);
  }
});

t.test('a failing call\'s grpc-status and grpc-message reach the client (trailers-only answers too)', async (t) => {
  const { h2c } = await sharedDaemon();
  const c = echoClient(t, h2c);
  t.same(await unary(c, { text: 'fail:7' }), { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'asked to fail' });
  t.same(await unary(c, { text: 'fail:5' }), { ok: false, code: grpc.status.NOT_FOUND, details: 'asked to fail' });
});

t.test('a dead upstream is a trailers-only UNAVAILABLE, not an HTML 502', async (t) => {
  const { h2c, d } = await start(t, '{ url: "http://127.0.0.1:1" }');
  const r = await unary(echoClient(t, h2c), { text: 'x' });
  t.match(r, { ok: false, code: grpc.status.UNAVAILABLE, details: 'upstream unavailable' });
  await d.waitForLine('the connect failure logged', (l) => l.code === 'ECONNREFUSED' && l.msg === 'upstream request failed');
});

t.test("the call's deadline (grpc-timeout) is baton's to keep: DEADLINE_EXCEEDED, logged, and the upstream stream is cancelled", async (t) => {
  // An upstream that never answers and keeps no deadline of its own: a grpc-js server answers DEADLINE_EXCEEDED itself
  // from the same grpc-timeout, and on a busy machine its answer can come through before baton's timer fires.
  const silent = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  silent.on('session', (s) => { sessions.add(s); s.on('error', () => {}); });
  const upstreamReset = new Promise<number>((resolve) => {
    silent.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.on('close', () => resolve(stream.rstCode));
      stream.resume();
    });
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sessions) s.destroy();
    silent.close();
  });
  const { d, h2c } = await start(t, `{ url: "http://127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}" }`);
  // A hand-made call whose client does not cancel it itself: the status must come from baton.
  const session = http2.connect(`http://${h2c}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  // Msg { text: "slow" }, framed: no compression, 4-byte length.
  const msg = Buffer.from([0x0a, 0x04, ...Buffer.from('slow')]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
  const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/baton.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => { headers = h; });
    req.on('trailers', (h) => { headers = { ...headers, ...h }; });
    req.on('error', reject);
    req.on('close', () => resolve(headers));
    req.resume();
    req.end(frame);
  });
  t.match(head, { ':status': 200, 'grpc-status': '4' }, 'DEADLINE_EXCEEDED, from baton: the upstream never answers');
  await d.waitForLine('the deadline logged', (l) => l.code === 'BATON_DEADLINE');
  t.equal(await upstreamReset, http2.constants.NGHTTP2_CANCEL, 'the upstream stream is reset with CANCEL');
});

t.test('a grpc-js client whose deadline passes gets DEADLINE_EXCEEDED, and the next call is served', async (t) => {
  const { up, h2c } = await sharedDaemon();
  const cancelled = up.calls['cancelled'] ?? 0;
  const c = echoClient(t, h2c);
  t.match(await unary(c, { text: 'slow', n: 30_000 }, 500), { ok: false, code: grpc.status.DEADLINE_EXCEEDED }, 'DEADLINE_EXCEEDED');
  await waitFor('the upstream to see the call cancelled', 15_000, () => ((up.calls['cancelled'] ?? 0) > cancelled ? true : undefined));
  t.same(await unary(c, { text: 'after' }), { ok: true, msg: { text: 'after', n: 0, delay: 0 } }, 'the next call is served');
});

t.test('an upstream slower than response_timeout is DEADLINE_EXCEEDED too (gRPC status 4)', async (t) => {
  const up = await startEchoServer(t);
  // 1s: the upstream holds the call for 30 s, so any response_timeout shows the behaviour; a short one is not waited out.
  const { h2c } = await start(t, `{ url: "http://${up.address}" }`, '\n    retry: { on: [connect_failure] }', '1s');
  const r = await unary(echoClient(t, h2c), { text: 'slow', n: 30_000 }, 60_000);
  t.match(r, { ok: false, code: grpc.status.DEADLINE_EXCEEDED, details: 'upstream timeout' });
});

t.test('an HTTP/1.1 client sending a gRPC call to an HTTP/2 upstream gets 426, and nothing goes upstream', async (t) => {
  const { up, h2c, d } = await sharedDaemon();
  const unaryCalls = up.calls['Unary'] ?? 0;
  const [host, port] = h2c.split(':');
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method: 'POST', path: '/baton.test.Echo/Unary', headers: { 'content-type': 'application/grpc', te: 'trailers' } }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => { body += c; });
      r.on('end', () => resolve({ status: r.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
  t.equal(res.status, 426);
  t.match(res.body, /Upgrade Required/);
  t.equal(up.calls['Unary'] ?? 0, unaryCalls, 'the upstream saw no call');
  await waitFor('the refusal logged', 15_000, () => d.lines().find((l) => l.status === 426 && String(l.reason).includes('gRPC')));
});

t.test('many concurrent calls share few upstream connections (multiplexed)', async (t) => {
  const up = await startEchoServer(t);
  let connections = 0;
  const { h2c } = await start(t, `{ url: "http://${up.address}" }`);
  // Count the TCP connections the upstream accepts: grpc-js's server is a plain http2 server underneath.
  const inner = (up.server as unknown as { http2Servers: Map<unknown, unknown> }).http2Servers;
  for (const s of inner.keys()) (s as { on(e: string, f: () => void): void }).on('connection', () => { connections++; });
  const c = echoClient(t, h2c);
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => unary(c, { text: `c${i}`, n: 50 })));
  t.equal(results.filter((r) => r.ok).length, 40, 'every call answered');
  t.ok(connections >= 1 && connections <= 2, `40 concurrent calls on ${connections} upstream connection(s)`);
});
