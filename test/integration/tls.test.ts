/**
 * @module TLS connections against the real daemon: client-initiated renegotiation (TLS 1.2) is refused and the
 * connection closed, and a handshake still in progress when the worker starts draining completes and is served.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import t from 'tap';
import { Daemon, proxyAll, waitFor, type Tap } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { upstream } from '../helpers/http.js';

const TLS_LISTENER = '  - listen: 127.0.0.1:0\n    tls: { cert: site.crt, key: site.key }';

async function tlsDaemon(t: Tap, url: string): Promise<{ d: Daemon; port: number }> {
  const d = new Daemon(t);
  makeCerts(d.dir);
  await d.start({ body: proxyAll(url, TLS_LISTENER) });
  return { d, port: await d.port() };
}


/** One HTTP/1.1 request on an open TLS socket: the response head and body, read until the body is complete. */
function exchange(socket: tls.TLSSocket, path: string, extra = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const m = /content-length: (\d+)\r\n[\s\S]*?\r\n\r\n/i.exec(text);
      if (m && text.length >= text.indexOf('\r\n\r\n') + 4 + Number(m[1])) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: site.test\r\n${extra}\r\n`);
  });
}

t.test('TLS 1.2 client-initiated renegotiation is refused and the connection closed', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`hello ${req.url}`));
  const { port } = await tlsDaemon(t, up.url);
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'site.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r) => socket.once('secureConnect', () => r()));
  t.equal(socket.getProtocol(), 'TLSv1.2');
  t.match(await exchange(socket, '/before'), /^HTTP\/1\.1 200[\s\S]*hello \/before$/, 'served before');
  const outcome = await new Promise<string>((resolve) => {
    socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ? `refused: ${err.message}` : 'renegotiated'));
    socket.once('close', () => resolve('closed'));
  });
  t.notSame(outcome, 'renegotiated', `the renegotiation does not happen (${outcome})`);
  await closed;
  t.pass('the server closed the connection');
  const again = tls.connect({ host: '127.0.0.1', port, servername: 'site.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
  t.teardown(() => again.destroy());
  await new Promise<void>((r) => again.once('secureConnect', () => r()));
  t.match(await exchange(again, '/after'), /^HTTP\/1\.1 200/, 'a new connection is served');
});

/**
 * A client socket that sends the first `head` bytes of what TLS writes and holds the rest until released: the
 * server then has part of a ClientHello, a handshake in progress.
 */
class Held extends Duplex {
  #held: Buffer[] = [];
  #released = false;
  #sent = 0;
  constructor(readonly raw: net.Socket, readonly head: number) {
    super();
    raw.on('data', (d: Buffer) => { if (!this.push(d)) raw.pause(); });
    raw.on('end', () => this.push(null));
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => this.destroy());
  }

  release(): void {
    this.#released = true;
    for (const c of this.#held.splice(0)) this.raw.write(c);
  }

  override _read(): void { this.raw.resume(); }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#released) {
      this.raw.write(chunk, cb);
      return;
    }
    const n = Math.max(0, Math.min(chunk.length, this.head - this.#sent));
    if (n > 0) this.raw.write(chunk.subarray(0, n));
    this.#sent += n;
    if (n < chunk.length) this.#held.push(chunk.subarray(n));
    cb();
  }
  override _final(cb: () => void): void { this.raw.end(); cb(); }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void { this.raw.destroy(); cb(err); }
}

t.test('TLS handshakes in progress when a worker starts draining complete, and their requests are served', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`hello ${req.url}`));
  const { d, port } = await tlsDaemon(t, up.url);
  const [worker] = d.workerPids();
  const raws = await Promise.all(['h1', 'h2'].map(() => new Promise<net.Socket>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => {});
  })));
  t.teardown(() => { for (const s of raws) s.destroy(); });
  const held = raws.map((raw) => new Held(raw, 100));
  const h1 = tls.connect({ socket: held[0], servername: 'site.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  const h2 = http2.connect('https://site.test', { createConnection: () => tls.connect({ socket: held[1], servername: 'site.test', rejectUnauthorized: false, ALPNProtocols: ['h2'] }) });
  for (const s of [h1, h2]) s.on('error', () => {});
  t.teardown(() => { h1.destroy(); h2.destroy(); });
  // Both connections are accepted and their ClientHellos have begun: the worker counts them.
  await waitFor('the worker to count both connections', 15_000, async () => {
    const w = ((await d.status()).workers as { pid: number; connections: number }[]).find((x) => x.pid === worker);
    return w && w.connections >= 2 ? true : undefined;
  });
  d.signal('SIGWINCH');
  await d.waitForLine('the worker draining', (l) => l.msg === 'draining' && l.pid === worker);
  for (const h of held) h.release();
  // Both requests go out as soon as their handshakes end (the HTTP/2 one before the drain's GOAWAY comes in).
  const h2body = new Promise<string>((resolve, reject) => {
    const req = h2.request({ ':path': '/h2' });
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => resolve(b));
    req.on('error', reject);
  });
  await new Promise<void>((r) => h1.once('secureConnect', () => r()));
  const text = await exchange(h1, '/h1');
  t.match(text, /^HTTP\/1\.1 200/, 'HTTP/1.1 over the late handshake is served');
  t.match(text, /connection: close/i, 'with Connection: close, as every response of a draining worker');
  t.match(text, /hello \/h1$/);
  t.equal(await h2body, 'hello /h2', 'HTTP/2 over the late handshake is served');
  await waitFor('the drained worker to exit', 30_000, () => (d.workerPids().includes(worker!) ? undefined : true));
  t.pass('the worker left once both connections were done');
});
