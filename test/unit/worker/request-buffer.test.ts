/**
 * @module Request buffering (`limits.request_buffering: on`, the default) in the handler, with real sockets: the
 * body is read whole before an upstream connection is taken (memory, then a temp file), and the client's limits
 * still hold while it uploads: max_body_size (413), body_timeout (408), Expect: 100-continue.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import { createRequestHandler } from '../../../lib/worker/handler.js';
import { holdContinue } from '../../../lib/worker/request-body.js';
import { deadOrigin, listen, makeConfig, memoryLogs, raw, route, sleep, startUpstream, until, upstream } from './config-fixture.js';

interface Seen { requests: number; connections: number; bodies: { length: number; sha: string; contentLength: string | undefined; te: string | undefined }[] }

async function countingUpstream(t: Test): Promise<{ origin: string; seen: Seen }> {
  const seen: Seen = { requests: 0, connections: 0, bodies: [] };
  const up = await startUpstream(t, (req, res) => {
    seen.requests++;
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => { length += c.length; hash.update(c); });
    req.on('end', () => {
      seen.bodies.push({ length, sha: hash.digest('hex'), contentLength: req.headers['content-length'], te: req.headers['transfer-encoding'] });
      res.end(`got ${length}\n`);
    });
  }, (s) => s.on('connection', () => { seen.connections++; }));
  return { origin: up.origin, seen };
}

/** The handler behind an HTTP/1.1 server that holds 100-continue as baton's servers do (servers.ts). */
async function front(t: Test, origin: string, limits: Parameters<typeof makeConfig>[2], maxBodySize = 0) {
  const mem = memoryLogs();
  const handler = createRequestHandler(makeConfig([upstream('app', [origin])], [route('/', { upstream: 'app', maxBodySize })], limits), mem.logs, { generation: 1 });
  const server = http.createServer((req, res) => handler.handle(req, res));
  server.on('checkContinue', (req, res) => {
    holdContinue(req);
    handler.handle(req, res);
  });
  t.teardown(() => handler.close());
  return { port: await listen(t, server), mem };
}

t.test('a body past request_buffer_size goes to a temp file and reaches the upstream whole, chunked turned into a length', async (t) => {
  const up = await countingUpstream(t);
  const { port } = await front(t, up.origin, { requestBufferSize: 16 * 1024 });
  const hash = createHash('sha256');
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/big', agent: false }, (res) => { res.resume(); resolve(res.statusCode!); });
    req.on('error', reject);
    for (let i = 0; i < 40; i++) {
      const chunk = Buffer.alloc(32 * 1024, i);
      hash.update(chunk);
      req.write(chunk);
    }
    req.end();
  });
  t.equal(status, 200);
  t.strictSame(up.seen.bodies, [{ length: 40 * 32 * 1024, sha: hash.digest('hex'), contentLength: String(40 * 32 * 1024), te: undefined }]);
});

t.test('a slow upload holds no upstream connection until its body is complete', async (t) => {
  const up = await countingUpstream(t);
  const { port } = await front(t, up.origin, {});
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => { s.destroy(); });
  let got = '';
  s.on('data', (c: Buffer) => { got += c; });
  s.write('POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello');
  // Ordinary requests meanwhile are served (one upstream connection for them).
  for (let i = 0; i < 5; i++) t.match(await raw(port, 'GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
  t.equal(up.seen.bodies.length, 5, 'only the GETs reached the upstream');
  s.write('world');
  await until(() => got.includes('got 10'), 5000, 'the upload to be answered');
  t.equal(up.seen.bodies.at(-1)?.length, 10);
});

t.test('a chunked body over max_body_size is a 413 and nothing reaches the upstream', async (t) => {
  const up = await countingUpstream(t);
  const { port } = await front(t, up.origin, {}, 1000);
  const got = await raw(port, `POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'a'.repeat(1024)}\r\n0\r\n\r\n`);
  t.match(got, /^HTTP\/1\.1 413 /);
  t.equal(up.seen.requests, 0);
});

t.test('a client that stops sending its body is answered 408 after body_timeout; nothing reaches the upstream', async (t) => {
  const up = await countingUpstream(t);
  const { port, mem } = await front(t, up.origin, { bodyTimeout: 200 });
  const got = await raw(port, 'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nsome', undefined, 5000);
  t.match(got, /^HTTP\/1\.1 408 /);
  t.match(got, /connection: close/i);
  t.equal(up.seen.connections, 0, 'no upstream connection was opened');
  await until(() => mem.errors.some((l) => l.code === 'BATON_CLIENT_IDLE'));
});

t.test('Expect: 100-continue is answered when buffering starts; a body refused by its length gets no 100', async (t) => {
  const up = await countingUpstream(t);
  const { port } = await front(t, up.origin, {}, 1000);
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => { s.destroy(); });
  let got = '';
  s.on('data', (c: Buffer) => { got += c; });
  s.write('PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
  await until(() => got.includes('100 Continue'), 5000, 'the interim 100');
  t.equal(up.seen.connections, 0, 'before the body, no upstream connection');
  s.write('abc');
  await until(() => got.includes('got 3'), 5000, 'the answer');
  const refused = await raw(port, 'PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
  t.match(refused, /^HTTP\/1\.1 413 /, '413 straight away, no 100 before it');
});

t.test('a client leaving mid-upload costs nothing upstream and leaves no descriptor open', async (t) => {
  const up = await countingUpstream(t);
  const { port } = await front(t, up.origin, { requestBufferSize: 1024 });
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let i = 0; i < 5; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.write(`POST /gone HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(5000)}`);
    await sleep(50);
    s.destroy();
  }
  await until(() => fds() <= before, 5000, 'descriptors (sockets and temp files) to be closed');
  t.equal(up.seen.connections, 0);
});

t.test('a body in a temp file whose upstream cannot be reached gets a 502 and leaves no descriptor open', async (t) => {
  const { port } = await front(t, await deadOrigin(), { requestBufferSize: 1024 });
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let i = 0; i < 3; i++) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/refused', agent: false, headers: { 'content-length': 64 * 1024 } }, (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('error', reject);
      req.end(Buffer.alloc(64 * 1024, 7));
    });
    t.equal(status, 502, 'refused upstream: 502');
  }
  await until(() => fds() <= before, 5000, 'descriptors (sockets and temp files) to be closed');
  t.pass('no temp file left open');
});

t.test('bodies read back from temp files while connections come and go all arrive intact (the descriptor is never closed under a reader)', async (t) => {
  const up = await countingUpstream(t);
  const { port, mem } = await front(t, up.origin, { requestBufferSize: 1024 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const body = Buffer.alloc(100 * 1024, 7);
  const one = (method: string) => new Promise<string>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: '/r', agent }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c; });
      res.on('end', () => resolve(`${res.statusCode} ${text.trim()}`));
    });
    req.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code}`));
    req.end(method === 'POST' ? body : undefined);
  });
  const results = (await Promise.all(Array.from({ length: 8 }, async (_, lane) => {
    const out: string[] = [];
    for (let i = 0; i < 40; i++) out.push(await one(lane % 2 === 0 ? 'POST' : 'GET'));
    return out;
  }))).flat();
  const wrong = results.filter((r) => r !== '200 got 102400' && r !== '200 got 0');
  t.strictSame(wrong, [], `${results.length} requests, every POST body arrived whole`);
  t.strictSame(mem.errors.filter((l) => l.level === 'warn' || l.level === 'error'), [], 'no error logged');
});
