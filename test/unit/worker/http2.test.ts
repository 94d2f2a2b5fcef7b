/**
 * @module The same handler behind an HTTP/2 (h2c) compat server: `:authority` routing, bodies both ways, and no
 * connection-specific upstream header reaching the HTTP/2 response (Node throws on them).
 */
import http2 from 'node:http2';
import type net from 'node:net';
import t, { type Test } from 'tap';
import type http from 'node:http';
import { createRequestHandler } from '../../../lib/worker/handler.js';
import { listen, makeConfig, memoryLogs, route, startUpstream, until, upstream } from './config-fixture.js';

async function h2Front(t: Test, config: ReturnType<typeof makeConfig>) {
  const mem = memoryLogs();
  const handler = createRequestHandler(config, mem.logs, { generation: 1 });
  const server = http2.createServer((req, res) => handler.handle(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
  t.teardown(async () => {
    for (const s of sessions) s.destroy();
    await handler.close();
  });
  const port = await listen(t, server as unknown as net.Server);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  t.teardown(() => { client.destroy(); });
  return { client, mem };
}

function h2request(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = client.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => { head = h; });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.setTimeout(5000, () => req.close());
    if (body !== undefined) req.end(body);
  });
}

t.test('an HTTP/2 request is routed by :authority and its response carries no connection headers', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    // Node upstreams send keep-alive and chunked transfer-encoding: illegal in HTTP/2 if relayed.
    res.setHeader('x-host', req.headers.host ?? '');
    res.write('hello ');
    res.end(req.url);
  });
  const { client, mem } = await h2Front(t, makeConfig([upstream('app', [up.origin])], [route('/', { host: 'h2.test', upstream: 'app' })]));
  const r = await h2request(client, { ':method': 'GET', ':path': '/p?q=1', ':authority': 'h2.test' });
  t.equal(r.headers[':status'], 200);
  t.equal(r.body.toString(), 'hello /p?q=1');
  t.equal(r.headers['x-host'], 'h2.test', ':authority became Host');
  t.equal(r.headers['transfer-encoding'], undefined);
  t.equal(r.headers['keep-alive'], undefined);
  t.ok(r.headers['x-request-id']);
  await until(() => mem.access.length === 1);
  t.match(mem.access[0], { status: 200, protocol: 'HTTP/2.0', host: 'h2.test' });
});

t.test('an HTTP/2 request body is streamed upstream, with or without content-length (request_buffering off)', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => res.end(`${req.method} ${n} ${req.headers['content-length'] ?? 'chunked'}`));
  });
  const { client } = await h2Front(t, makeConfig([upstream('app', [up.origin])], [route('/', { upstream: 'app' })], { requestBuffering: false }));
  const body = Buffer.alloc(300_000, 1);
  const a = await h2request(client, { ':method': 'POST', ':path': '/u', ':authority': 'x' }, body);
  t.equal(a.body.toString(), 'POST 300000 chunked');
  const b = await h2request(client, { ':method': 'PUT', ':path': '/u', ':authority': 'x', 'content-length': '5' }, Buffer.from('12345'));
  t.equal(b.body.toString(), 'PUT 5 5');
  const c = await h2request(client, { ':method': 'GET', ':path': '/after', ':authority': 'x' });
  t.equal(c.headers[':status'], 200, 'the session is still fine');
});

t.test('a buffered HTTP/2 request body reaches the upstream whole, with a content-length it did not have', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => res.end(`${req.method} ${n} ${req.headers['content-length'] ?? 'chunked'}`));
  });
  const { client } = await h2Front(t, makeConfig([upstream('app', [up.origin])], [route('/', { upstream: 'app' })], { requestBufferSize: 1024 }));
  const a = await h2request(client, { ':method': 'POST', ':path': '/u', ':authority': 'x' }, Buffer.alloc(300_000, 1));
  t.equal(a.body.toString(), 'POST 300000 300000', 'spilled to a temp file past request_buffer_size, replayed with its length');
  const b = await h2request(client, { ':method': 'POST', ':path': '/u', ':authority': 'x' }, Buffer.from('12345'));
  t.equal(b.body.toString(), 'POST 5 5', 'kept in memory');
});
