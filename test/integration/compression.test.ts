/**
 * @module Response compression through the real daemon: curl and Node clients over HTTP/1.1 and HTTP/2, what is
 * never compressed, server-sent events arriving while the upstream waits, and backpressure from a client that
 * stops reading down to the upstream.
 */
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';

const PAGE = Buffer.from('<p>compress me, compress me, compress me</p>\n'.repeat(200)); // 9 KB of HTML
const LARGE = Buffer.from(JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ id: i, name: `user ${i}`, token: crypto.createHash('md5').update(String(i)).digest('hex') })))); // ~250 KB

interface CurlResult {
  code: number;
  head: string;
  body: Buffer;
  stderr: string;
}

/** curl with `-D -`: the header block, then the body as curl wrote it (decoded with --compressed). */
function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '30', '-D', '-', ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const cut = stdout.indexOf('\r\n\r\n');
      resolve({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        head: cut === -1 ? stdout.toString('latin1') : stdout.subarray(0, cut).toString('latin1'),
        body: cut === -1 ? Buffer.alloc(0) : stdout.subarray(cut + 4),
        stderr: stderr.toString(),
      });
    });
  });
}

const header = (head: string, name: string): string | undefined => new RegExp(`^${name}: ([^\r\n]*)\r?$`, 'im').exec(head)?.[1];

t.test('compression: responses are compressed with the coding the client prefers, and left alone when they should be', async (t) => {
  let sseRelease: () => void = () => {};
  const up = await upstream(t, (req, res) => {
    const url = req.url ?? '';
    if (url === '/page' || url === '/nocompress/page') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': PAGE.length, etag: '"p1"', 'accept-ranges': 'bytes' });
      res.end(req.method === 'HEAD' ? undefined : PAGE);
    } else if (url === '/large') {
      // Over the one-call size: streamed, though its length is known.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': LARGE.length });
      res.write(LARGE.subarray(0, 100_000));
      setImmediate(() => res.end(LARGE.subarray(100_000)));
    } else if (url === '/range') {
      res.writeHead(206, { 'content-type': 'text/html', 'content-range': `bytes 0-99/${PAGE.length}`, 'content-length': 100 });
      res.end(PAGE.subarray(0, 100));
    } else if (url === '/png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': PAGE.length });
      res.end(PAGE);
    } else if (url === '/small') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 10 });
      res.end('0123456789');
    } else if (url === '/already') {
      const gz = zlib.gzipSync(PAGE);
      res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'content-length': gz.length });
      res.end(gz);
    } else if (url === '/notransform') {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-transform' });
      res.end(PAGE);
    } else if (url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      // The second event only once the test has seen the first one through baton: a flush is the only way.
      sseRelease = () => res.end('data: two\n\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
    h2c: true
compression:
  min_size: 100
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /nocompress/
    upstream: app
    compress: false
  - path: /
    upstream: app
`,
  });
  const url = `http://127.0.0.1:${await d.port()}`;

  t.test('curl --compressed gets brotli (the first algorithm), decoded to the very bytes the upstream sent', async (t) => {
    const r = await curl(['--compressed', '-H', 'X-Request-Id: br-1', `${url}/page`]);
    t.equal(r.code, 0, r.stderr);
    t.equal(header(r.head, 'content-encoding'), 'br');
    t.equal(header(r.head, 'vary'), 'Accept-Encoding');
    t.equal(header(r.head, 'etag'), 'W/"p1"', 'a strong ETag is weakened');
    t.equal(header(r.head, 'content-length'), undefined);
    t.equal(header(r.head, 'accept-ranges'), undefined);
    t.ok(r.body.equals(PAGE), 'the body decodes to the original');
    const line = await d.waitForLine('the access line', (l) => l.request_id === 'br-1', 30_000, d.accessLog);
    t.ok((line.bytes as number) > 0 && (line.bytes as number) < PAGE.length / 5, `the access log counts the compressed bytes (${String(line.bytes)})`);
  });

  t.test('a client that prefers gzip by q-value gets gzip', async (t) => {
    const r = await curl(['-H', 'Accept-Encoding: br;q=0.5, gzip', `${url}/page`]);
    t.equal(header(r.head, 'content-encoding'), 'gzip');
    t.ok(zlib.gunzipSync(r.body).equals(PAGE));
  });

  t.test('a body over the one-call size streams through the encoder, both codings', async (t) => {
    for (const coding of ['gzip', 'br']) {
      const r = await curl(['-H', `Accept-Encoding: ${coding}`, `${url}/large`]);
      t.equal(header(r.head, 'content-encoding'), coding);
      const decoded = coding === 'gzip' ? zlib.gunzipSync(r.body) : zlib.brotliDecompressSync(r.body);
      t.ok(decoded.equals(LARGE), `${coding}: ${LARGE.length} bytes in ${r.body.length}`);
    }
  });

  t.test('an HTTP/2 client gets it compressed too', async (t) => {
    const r = await curl(['--http2-prior-knowledge', '-H', 'Accept-Encoding: gzip', `${url}/page`]);
    t.match(r.head, /^HTTP\/2 200/);
    t.equal(header(r.head, 'content-encoding'), 'gzip');
    t.ok(zlib.gunzipSync(r.body).equals(PAGE));
  });

  t.test('never compressed: no Accept-Encoding, HEAD, a range, a type not listed, under min_size, already encoded, no-transform, compress: false', async (t) => {
    const plain = await curl([`${url}/page`]);
    t.equal(header(plain.head, 'content-encoding'), undefined);
    t.equal(header(plain.head, 'content-length'), String(PAGE.length), 'sent as it is');
    t.equal(header(plain.head, 'vary'), 'Accept-Encoding', 'but Vary says it could differ');
    t.ok(plain.body.equals(PAGE));
    const ae = ['-H', 'Accept-Encoding: gzip, br'];
    const head = await curl([...ae, '-I', `${url}/page`]);
    t.equal(header(head.head, 'content-encoding'), undefined, 'HEAD');
    for (const path of ['/range', '/png', '/small', '/notransform', '/nocompress/page']) {
      const r = await curl([...ae, `${url}${path}`]);
      t.equal(header(r.head, 'content-encoding'), undefined, path);
    }
    const already = await curl([...ae, `${url}/already`]);
    t.equal(header(already.head, 'content-encoding'), 'gzip', 'the upstream\'s own coding is relayed');
    t.ok(zlib.gunzipSync(already.body).equals(PAGE), 'and not compressed twice');
  });

  t.test('server-sent events: the first event arrives while the upstream waits (a flush when it pauses), over HTTP/1.1 and HTTP/2', async (t) => {
    const child = spawn('curl', ['-sS', '-N', '--compressed', '--max-time', '60', `${url}/sse`], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await waitFor('the first event through curl', 30_000, () => (out.includes('data: one\n\n') ? true : undefined));
    t.notMatch(out, /two/, 'the second event is not sent yet');
    sseRelease();
    t.equal(await exited, 0);
    t.equal(out, 'data: one\n\ndata: two\n\n');

    const session = http2.connect(url);
    t.teardown(() => session.destroy());
    const stream = session.request({ ':path': '/sse', 'accept-encoding': 'gzip' });
    const headers = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once('response', r));
    t.equal(headers['content-encoding'], 'gzip');
    const gunzip = zlib.createGunzip();
    stream.pipe(gunzip);
    let h2out = '';
    gunzip.on('data', (c: Buffer) => { h2out += c.toString(); });
    await waitFor('the first event over HTTP/2', 30_000, () => (h2out.includes('data: one\n\n') ? true : undefined));
    sseRelease();
    await new Promise<void>((r) => gunzip.once('end', () => r()));
    t.equal(h2out, 'data: one\n\ndata: two\n\n');
  });
});

t.test('compression keeps backpressure: a client that stops reading holds the upstream, and then gets every byte', async (t) => {
  const TOTAL = 64 * 1024 * 1024;
  const state = { written: 0, held: false, ended: false, changedAt: Date.now() };
  const expected = crypto.createHash('sha256');
  const up = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const pump = () => {
      state.held = false;
      while (state.written < TOTAL) {
        // Text that compresses to about 3/4: the compressed stream is large too.
        const chunk = Buffer.from(crypto.randomBytes(48 * 1024).toString('base64'));
        expected.update(chunk);
        state.written += chunk.length;
        state.changedAt = Date.now();
        if (!res.write(chunk)) {
          state.held = true;
          res.once('drain', pump);
          return;
        }
      }
      state.ended = true;
      res.end();
    };
    pump();
  });
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
compression: { algorithms: [gzip] }
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /
    upstream: app
`,
  });
  const port = await d.port();
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/big', headers: { 'accept-encoding': 'gzip' }, agent: false }, resolve);
    req.on('error', reject);
  });
  t.teardown(() => res.destroy());
  res.pause();
  t.equal(res.headers['content-encoding'], 'gzip');
  // Held: the upstream waits for 'drain' and has written nothing for 2 s (or it wrote everything: then nothing held it).
  await waitFor('the upstream held by backpressure', 60_000, () => (state.ended || (state.held && Date.now() - state.changedAt > 2000) ? true : undefined));
  t.notOk(state.ended, 'the upstream did not get to write its whole body');
  t.ok(state.written < TOTAL / 2, `held after ${(state.written / 1048576).toFixed(1)} MiB of ${TOTAL / 1048576} MiB`);
  const got = crypto.createHash('sha256');
  let n = 0;
  const gunzip = zlib.createGunzip();
  gunzip.on('data', (c: Buffer) => { got.update(c); n += c.length; });
  const done = new Promise<void>((resolve, reject) => { gunzip.on('end', resolve); gunzip.on('error', reject); });
  res.pipe(gunzip);
  await done;
  t.equal(n, TOTAL, 'every byte arrived once the client read again');
  t.equal(got.digest('hex'), expected.digest('hex'));
});
