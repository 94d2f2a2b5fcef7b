import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { request, upstream, type Upstream } from '../helpers/http.js';

const MB = 1024 * 1024;

function config(up: Upstream, extra = ''): string {
  return `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
    connect_timeout: 1s
    response_timeout: 1s
  down:
    targets: [{ url: "http://127.0.0.1:1" }]
${extra}
routes:
  - path: /down/
    upstream: down
  - path: /
    upstream: app
`;
}

t.test('requests go through the real daemon to a real upstream, both ways', async (t) => {
  let seen: http.IncomingHttpHeaders = {};
  const up = await upstream(t, (req, res) => {
    seen = req.headers;
    if (req.url === '/endless') return; // answered by the test's own listener
    if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 3000);
      return;
    }
    if (req.url?.startsWith('/echo')) {
      const hash = crypto.createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => { n += c.length; hash.update(c); });
      req.on('end', () => res.end(JSON.stringify({ n, sha: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })));
      return;
    }
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'keep-alive': 'timeout=5', 'x-up': 'yes' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let left = 50 * MB;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.setHeader('connection', 'keep-alive, x-hop');
    res.setHeader('x-hop', 'should not pass');
    res.end(`hello ${req.method} ${req.url}`);
  });
  const d = await new Daemon(t).start({ body: config(up), workers: 2 });
  const port = await d.port();

  t.test('GET is proxied with X-Forwarded-*, Via and a request id, and hop-by-hop headers are stripped', async (t) => {
    const r = await request(port, '/a?b=1', { headers: { host: 'example.test', connection: 'keep-alive, x-secret', 'x-secret': 'no', 'x-request-id': 'abc123' } });
    t.equal(r.status, 200);
    t.equal(r.body, 'hello GET /a?b=1');
    t.equal(seen['x-forwarded-for'], '127.0.0.1');
    t.equal(seen['x-forwarded-proto'], 'http');
    t.equal(seen['x-forwarded-host'], 'example.test');
    t.equal(seen.host, 'example.test');
    t.match(seen.via, /1\.1 baton/);
    t.equal(seen['x-request-id'], 'abc123');
    t.equal(seen['x-secret'], undefined, 'a header named in Connection is not forwarded');
    t.equal(r.headers['x-hop'], undefined, 'a response header named in Connection is not forwarded');
    t.equal(r.headers['x-request-id'], 'abc123');
  });

  t.test('POST bodies and a 20 MB chunked upload reach the upstream intact (buffered: with their length)', async (t) => {
    const small = await request(port, '/echo', { method: 'POST', body: 'x=1' });
    t.match(JSON.parse(small.body), { n: 3 });
    const data = crypto.randomBytes(MB);
    const hash = crypto.createHash('sha256');
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/echo/upload', method: 'POST', agent: false }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      let i = 0;
      const write = () => {
        while (i < 20) {
          i++;
          hash.update(data);
          if (!req.write(data)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    const got = JSON.parse(reply) as { n: number; sha: string; te?: string };
    t.match(got, { n: 20 * MB, sha: hash.digest('hex') });
    t.equal(got.te, null, 'request_buffering (the default) sends the buffered body with a content-length, not chunked');
  });

  t.test('a 50 MB download streams through with hop-by-hop response headers removed', async (t) => {
    const got = await new Promise<{ n: number; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/download', agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => { n += c.length; });
        res.on('end', () => resolve({ n, headers: res.headers }));
        res.on('error', reject);
      }).on('error', reject);
    });
    t.equal(got.n, 50 * MB);
    t.equal(got.headers['x-up'], 'yes');
    t.not(got.headers['keep-alive'], 'timeout=5', 'the upstream keep-alive header is not relayed');
  });

  t.test('a refused upstream answers 502 with a short body and an error-log line', async (t) => {
    const r = await request(port, '/down/x');
    t.equal(r.status, 502);
    t.match(r.body, /Bad Gateway/);
    await d.waitForLine('a 502 log line', (l) => l.level !== 'info' && l.level !== 'debug' && JSON.stringify(l).includes('127.0.0.1:1'));
  });

  t.test('an upstream slower than response_timeout answers 504', async (t) => {
    const r = await request(port, '/slow');
    t.equal(r.status, 504);
    t.match(r.body, /Gateway Timeout/);
  });

  t.test('a client that leaves mid-response cancels the upstream request and is logged as 499', async (t) => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => { upstreamClosed = r; });
    up.server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url !== '/endless') return;
      res.on('close', () => upstreamClosed());
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 5);
      res.on('close', () => clearInterval(timer));
    });
    const sock = net.connect(port, '127.0.0.1');
    sock.write('GET /endless HTTP/1.1\r\nhost: x\r\nx-request-id: leaver-1\r\n\r\n');
    await new Promise<void>((r) => sock.once('data', () => r()));
    sock.destroy();
    await closed;
    const line = await d.waitForLine('499 in the access log', (l) => l.request_id === 'leaver-1', 10_000, d.accessLog);
    t.equal(line.status, 499);
  });

  t.test('every request is in the access log with the documented fields', async (t) => {
    await request(port, '/logged', { headers: { 'x-request-id': 'log-me' } });
    const line = await d.waitForLine('access line', (l) => l.request_id === 'log-me', 10_000, d.accessLog);
    t.match(line, {
      time: String, client: '127.0.0.1', method: 'GET', path: '/logged', status: 200, bytes: Number, duration: Number,
      upstream: 'app', target: up.url.slice('http://'.length), upstream_time: Number, request_id: 'log-me', protocol: 'HTTP/1.1',
    });
  });
});

t.test('a WebSocket is tunnelled to the upstream and echoes both ways; with the upstream down it gets a 502', async (t) => {
  const up = await upstream(t, (_req, res) => res.end());
  up.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const accept = crypto.createHash('sha1').update(String(req.headers['sec-websocket-key']) + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket); // raw echo: the test only checks bytes travel both ways
  });
  const d = await new Daemon(t).start({ body: config(up) });
  const port = await d.port();
  const key = crypto.randomBytes(16).toString('base64');
  const sock = net.connect(port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  sock.write(`GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`);
  let buf = '';
  sock.on('data', (c) => { buf += c.toString('latin1'); });
  await waitFor('101', 5000, () => (buf.includes('\r\n\r\n') ? true : undefined));
  t.match(buf, /^HTTP\/1\.1 101/);
  buf = '';
  sock.write('ping-1');
  await waitFor('echo', 5000, () => (buf.includes('ping-1') ? true : undefined));
  t.pass('bytes echoed through the tunnel');

  const down = net.connect(port, '127.0.0.1');
  t.teardown(() => down.destroy());
  let answer = '';
  down.on('data', (c) => { answer += c; });
  down.write(`GET /down/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`);
  await waitFor('502', 5000, () => (answer.includes('\r\n\r\n') ? true : undefined));
  t.match(answer, /^HTTP\/1\.1 502/);
});
