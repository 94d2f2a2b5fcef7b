import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { Daemon, freePort, proxyAll, waitFor } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { upstream } from '../helpers/http.js';
import { FRAME, PREFACE, frame, getHeaders, h2raw, readFrames } from '../helpers/h2-raw.js';

/** A daemon with one h2c listener proxying everything to `url`, and an HTTP/2 client connected to it. */
async function h2cDaemon(t: { teardown(fn: () => unknown): void }, url: string): Promise<{ d: Daemon; client: http2.ClientHttp2Session }> {
  const d = new Daemon(t);
  await d.start({ body: proxyAll(url, '  - listen: 127.0.0.1:0\n    h2c: true') });
  const client = http2.connect(`http://127.0.0.1:${await d.port()}`);
  t.teardown(() => client.destroy());
  client.on('error', () => {});
  return { d, client };
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${err.message}\n${stderr}`)) : resolve(stdout))));
}

t.test('HTTPS with SNI and ALPN, and h2c on a cleartext port, in front of an HTTP/1.1 upstream', async (t) => {
  const up = await upstream(t, (req, res) => {
    res.setHeader('x-seen-host', req.headers.host ?? '');
    res.end(`hello ${req.url} over ${req.headers['x-forwarded-proto']}\n`);
  });
  const d = new Daemon(t);
  const certs = makeCerts(d.dir);
  const [tlsPort, h2cPort] = [await freePort(), await freePort()];
  await d.start({
    workers: 2,
    body: proxyAll(up.url, `  - listen: 127.0.0.1:${tlsPort}
    tls:
      cert: site.crt
      key: site.key
      sni:
        - names: [api.example.test, "*.api.example.test"]
          cert: api.crt
          key: api.key
  - listen: 127.0.0.1:${h2cPort}
    h2c: true`),
  });

  t.test('curl --http2 over TLS negotiates h2 and is proxied with :authority as Host', async (t) => {
    const r = await curl(['--http2', '--cacert', certs.ca, '--resolve', `site.test:${tlsPort}:127.0.0.1`, '-D', '-', `https://site.test:${tlsPort}/a`]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^HTTP\/2 200/);
    t.match(r.stdout, /x-seen-host: site\.test:\d+/);
    t.match(r.stdout, /hello \/a over https/);
    t.notMatch(r.stdout, /^(connection|keep-alive|transfer-encoding):/im, 'no connection-specific headers in an HTTP/2 response');
  });

  t.test('curl --http1.1 over TLS still works on the same port', async (t) => {
    const r = await curl(['--http1.1', '--cacert', certs.ca, '--resolve', `site.test:${tlsPort}:127.0.0.1`, '-D', '-', `https://site.test:${tlsPort}/b`]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^HTTP\/1\.1 200/);
  });

  t.test('SNI picks the certificate for the name, with wildcards; unknown names get the default', async (t) => {
    const subject = (servername: string) => new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
        const cn = String(s.getPeerCertificate().subject.CN);
        s.destroy();
        resolve(cn);
      });
      s.on('error', reject);
    });
    t.equal(await subject('api.example.test'), 'api.example.test');
    t.equal(await subject('v2.api.example.test'), 'api.example.test');
    t.equal(await subject('site.test'), 'site.test');
    t.equal(await subject('unknown.test'), 'site.test');
  });

  t.test('h2c with prior knowledge and HTTP/1.1 share one cleartext port', async (t) => {
    const h2 = await curl(['--http2-prior-knowledge', '-D', '-', `http://127.0.0.1:${h2cPort}/c`]);
    t.equal(h2.code, 0, h2.stderr);
    t.match(h2.stdout, /^HTTP\/2 200/);
    t.match(h2.stdout, /hello \/c over http/);
    const h1 = await curl(['--http1.1', '-D', '-', `http://127.0.0.1:${h2cPort}/d`]);
    t.match(h1.stdout, /^HTTP\/1\.1 200/);
  });

  t.test('an h2c preface that arrives a few bytes at a time, its last piece with the first frames, opens an HTTP/2 session', async (t) => {
    const pieces = [PREFACE.subarray(0, 3), PREFACE.subarray(3, 16), PREFACE.subarray(16, 20), Buffer.concat([PREFACE.subarray(20), frame(FRAME.SETTINGS, 0, 0), frame(FRAME.HEADERS, 0x5, 1, getHeaders('split.test'))])];
    // Without Nagle's algorithm each piece leaves at once, in its own packet.
    const socket = net.connect({ port: h2cPort, host: '127.0.0.1', noDelay: true });
    t.teardown(() => socket.destroy());
    socket.on('error', () => {});
    const got = new Promise<{ status: boolean; body: string }>((resolve) => {
      let status = false;
      let body = '';
      readFrames(socket, (f) => {
        // HPACK: 0x88 is ":status: 200" from the static table.
        if (f.type === FRAME.HEADERS && f.stream === 1) status = f.payload[0] === 0x88;
        if (f.type === FRAME.DATA && f.stream === 1) body += f.payload.toString();
        if (f.stream === 1 && f.flags & 1) resolve({ status, body });
      });
      socket.on('close', () => resolve({ status, body }));
    });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    for (const piece of pieces) {
      socket.write(piece);
      await new Promise((r) => setTimeout(r, 30));
    }
    const answer = await got;
    t.ok(answer.status, 'the stream is answered 200 over HTTP/2');
    t.match(answer.body, /^hello \/ over http/);
  });

  t.test('an HTTP/2 preface after an HTTP/1.1 request on the same connection opens no session: the request is answered, then the connection closes', async (t) => {
    const request = 'GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n';
    const preface = PREFACE.toString('latin1');
    const exchange = (separately: boolean) => new Promise<string>((resolve) => {
      const s = net.connect({ port: h2cPort, host: '127.0.0.1', noDelay: true }, () => {
        if (!separately) return void s.write(request + preface);
        s.write(request);
        // The preface in a read of its own, once the answer came: not pipelined behind the request.
        s.once('data', () => s.write(preface));
      });
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('error', () => resolve(text));
      s.on('close', () => resolve(text));
      s.setTimeout(5000, () => s.destroy());
    });
    const together = await exchange(false);
    // A parse error behind a request in flight ends the connection after its answer (client-error.ts).
    t.match(together, /^HTTP\/1\.1 200 /);
    t.match(together, /\r\nConnection: close\r\n/);
    t.match(together, /\r\n\r\nhello \/first over http\n$/, 'nothing follows the answer');
    const apart = await exchange(true);
    t.match(apart, /^HTTP\/1\.1 200 [^]*\r\n\r\nhello \/first over http\nHTTP\/1\.1 400 /, 'after the answer, the preface gets 400');
  });

  t.test('h2load completes every stream over h2c and over TLS', async (t) => {
    const c = await run('h2load', ['-n', '400', '-c', '4', '-m', '10', `http://127.0.0.1:${h2cPort}/load`]);
    t.match(c, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored/);
    const s = await run('h2load', ['-n', '400', '-c', '4', '-m', '10', `https://127.0.0.1:${tlsPort}/load`]);
    t.match(s, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored/);
  });

  t.test('broken TLS handshakes and junk on the h2c port never take a worker down', async (t) => {
    const workers = d.workerPids();
    const junk = async (port: number, bytes: Buffer) => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(bytes));
      s.resume(); // read the answer, or the server's FIN is never seen
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.setTimeout(3000, () => s.destroy());
    });
    for (let i = 0; i < 20; i++) {
      await junk(tlsPort, Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-hello'));
      await junk(tlsPort, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      await junk(h2cPort, Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\xff\xff\xff\xff'));
      await junk(h2cPort, Buffer.from('PRI * HTTP/2.0\r\nnot a preface'));
      await junk(h2cPort, Buffer.from([0, 1, 2, 3, 255, 254]));
    }
    t.same(d.workerPids().sort(), workers.sort(), 'the same workers are alive');
    const r = await curl(['--http2-prior-knowledge', `http://127.0.0.1:${h2cPort}/after`]);
    t.match(r.stdout, /hello \/after/);
  });
});

t.test('a draining worker sends GOAWAY(2^31-1), keeps serving, then a final GOAWAY with the real last stream id', async (t) => {
  const up = await upstream(t, (req, res) => setTimeout(() => res.end(`done ${req.url}`), req.url === '/slow' ? 1500 : 0));
  const { d, client } = await h2cDaemon(t, up.url);
  const goaways: number[] = [];
  client.on('goaway', (_code: number, lastStreamId: number) => goaways.push(lastStreamId));
  const get = (p: string) => new Promise<string>((resolve, reject) => {
    const s = client.request({ ':path': p });
    let body = '';
    s.on('data', (c) => { body += c; });
    s.on('end', () => resolve(body));
    s.on('error', reject);
  });
  t.equal(await get('/first'), 'done /first');
  const slow = get('/slow');
  await new Promise((r) => setTimeout(r, 100));
  d.signal('SIGWINCH'); // the workers drain at once, with the slow stream in flight
  await waitFor('first GOAWAY', 10_000, () => (goaways.length >= 1 ? true : undefined));
  t.equal(goaways[0], 2 ** 31 - 1, 'first GOAWAY announces the maximum stream id');
  t.equal(await slow, 'done /slow', 'the stream in flight completes');
  await waitFor('final GOAWAY', 10_000, () => (goaways.length >= 2 ? true : undefined));
  t.equal(goaways[1], 3, 'final GOAWAY names the last stream really processed');
});

t.test('HTTP/2 clients get trailers, a reset stream when the upstream breaks, and cancel upstream requests by resetting', async (t) => {
  let upstreamClosed!: () => void;
  const closed = new Promise<void>((r) => { upstreamClosed = r; });
  const up = await upstream(t, (req, res) => {
    if (req.url === '/trailers') {
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
    } else if (req.url === '/break') {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.socket?.destroy(), 50);
    } else if (req.url === '/endless') {
      res.on('close', () => upstreamClosed());
      const timer = setInterval(() => res.write(Buffer.alloc(8192)), 5);
      res.on('close', () => clearInterval(timer));
    } else if (req.url === '/big') {
      res.end(Buffer.alloc(20 * 1024 * 1024, 1));
    }
  });
  const { d, client } = await h2cDaemon(t, up.url);

  const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const s = client.request({ ':path': '/trailers' });
    s.on('trailers', resolve);
    s.on('error', reject);
    s.resume();
  });
  t.equal(trailers['x-checksum'], 'abc123', 'upstream trailers arrive as HTTP/2 trailers');

  const broken = await new Promise<{ ended: boolean; rst: number }>((resolve) => {
    const s = client.request({ ':path': '/break' });
    let ended = false;
    s.resume();
    s.on('end', () => { ended = true; });
    s.on('error', () => {});
    s.on('close', () => resolve({ ended, rst: s.rstCode ?? 0 }));
  });
  t.equal(broken.ended, false, 'a response cut upstream never ends as if complete');
  t.not(broken.rst, 0, 'the stream is reset (RST_STREAM with an error code)');

  const s = client.request({ ':path': '/endless' });
  await new Promise<void>((r) => s.once('data', () => r()));
  s.close(http2.constants.NGHTTP2_CANCEL);
  await closed;
  t.pass('resetting the stream cancelled the upstream request');

  const size = await new Promise<number>((resolve, reject) => {
    const big = client.request({ ':path': '/big' });
    let n = 0;
    big.on('data', (c: Buffer) => { n += c.length; });
    big.on('end', () => resolve(n));
    big.on('error', reject);
  });
  t.equal(size, 20 * 1024 * 1024, 'a 20 MB response crosses HTTP/2 flow control intact');
});

t.test('a stream opened after the first GOAWAY of a drain is still served, over h2c and over TLS', async (t) => {
  const d = new Daemon(t);
  makeCerts(d.dir);
  const [h2cPort, tlsPort] = [await freePort(), await freePort()];
  await d.start({ body: `
listeners:
  - listen: 127.0.0.1:${h2cPort}
    h2c: true
  - listen: 127.0.0.1:${tlsPort}
    tls: { cert: site.crt, key: site.key }
routes:
  - path: /
    return: { status: 200, body: "ok\\n" }
` });
  const events: string[] = [];
  const connected = (kind: string, socket: import('node:stream').Duplex) => new Promise<void>((resolve) => {
    let goaways = 0;
    socket.on('error', (err: Error & { code?: string }) => events.push(`${kind} error ${err.code}`));
    socket.on('close', () => resolve());
    h2raw(socket, (f) => {
      if (f.type === FRAME.HEADERS) events.push(`${kind} response on stream ${f.stream}`);
      if (f.type === FRAME.RST_STREAM) events.push(`${kind} reset of stream ${f.stream}`);
      if (f.type === FRAME.GOAWAY) {
        events.push(`${kind} GOAWAY last=${f.payload.readUInt32BE(0) & 0x7fffffff}`);
        // The client's request crosses the first GOAWAY: it goes out right after it.
        if (++goaways === 1) socket.write(frame(FRAME.HEADERS, 0x05, 3, getHeaders('x')));
      }
    });
    socket.write(frame(FRAME.HEADERS, 0x05, 1, getHeaders('x')));
  });
  const plain = net.connect(h2cPort, '127.0.0.1');
  const secure = tls.connect({ host: '127.0.0.1', port: tlsPort, ALPNProtocols: ['h2'], rejectUnauthorized: false });
  await Promise.all([new Promise((r) => plain.once('connect', r)), new Promise((r) => secure.once('secureConnect', r))]);
  const done = Promise.all([connected('h2c', plain), connected('tls', secure)]);
  await waitFor('both first responses', 5000, () => (events.filter((e) => e.endsWith('stream 1')).length === 2 ? true : undefined));
  d.signal('SIGWINCH');
  await done;
  for (const kind of ['h2c', 'tls']) {
    const mine = events.filter((e) => e.startsWith(kind));
    t.same(mine, [`${kind} response on stream 1`, `${kind} GOAWAY last=2147483647`, `${kind} response on stream 3`, `${kind} GOAWAY last=3`].concat(mine.length > 4 ? mine.slice(4) : []), `${kind}: served after the notice, then the final GOAWAY names it`);
    t.notOk(mine.some((e) => e.includes('reset')), `${kind}: nothing reset`);
  }
});
