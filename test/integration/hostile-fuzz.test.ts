/**
 * Generated hostile input against the real daemon (2 workers; an HTTP/1.1 port, an h2c port and a TLS port):
 * a few thousand connections carrying random bytes, truncated request lines, broken chunked bodies, invalid
 * header names and values, bad versions, junk HTTP/2 frames and bad TLS hellos, in parallel batches. Each must
 * end with a 4xx (or 505) or just a close, never a 2xx or a 5xx from the proxy path, never a hang; no worker
 * may die and nothing may be logged as uncaught. The inputs come from a seeded generator (the seed is in the
 * test name, and BATON_FUZZ_SEED replays one).
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { Daemon } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest } from '../helpers/raw.js';

const SEED = Number(process.env['BATON_FUZZ_SEED'] ?? Date.now() % 1_000_000);
const PER_KIND = 260;
const BATCH = 60;

/** mulberry32: small, seedable, good enough to spread inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
const TOKEN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-';
const token = (n: number) => Array.from({ length: n }, () => TOKEN[int(TOKEN.length)]).join('');
/** Bytes never allowed in a header name (controls, separators, non-ASCII). */
const BAD_NAME = [0, 1, 9, 11, 12, 31, 32, 34, 40, 41, 44, 47, 59, 60, 61, 62, 63, 64, 91, 92, 93, 123, 125, 127, 128, 200, 255]; // not ':' (it would just end the name)
/** Bytes never allowed in a header value (controls other than HTAB; CR and LF alone are framing). */
const BAD_VALUE = [0, 1, 2, 8, 11, 12, 14, 27, 31, 127];

function validHead(method = 'GET'): string {
  return `${method} /${token(1 + int(12))} HTTP/1.1\r\nhost: fuzz.test\r\nx-${token(4)}: ${token(8)}\r\n`;
}

type Kind = 'random bytes' | 'truncated request line' | 'broken chunked body' | 'bad header name' | 'bad header value' |
  'bad version or method' | 'oversized header' | 'junk HTTP/2 frames' | 'bad TLS hello';

function generate(kind: Kind): Buffer {
  switch (kind) {
    case 'random bytes': {
      // First byte outside the token set and not 'P' (the h2 preface): no method can start there.
      const b = bytes(1 + int(1500));
      b[0] = pick([0, 1, 13, 10, 32, 34, 40, 127, 128, 200, 255]);
      return b;
    }
    case 'truncated request line': {
      const full = `${pick(['GET', 'POST', 'PUT', 'DELETE'])} /${token(int(30))}?${token(int(10))} HTTP/1.1\r\nhost: fuzz.test\r\n`;
      return Buffer.from(full.slice(0, 1 + int(full.length - 2)));
    }
    case 'broken chunked body': {
      const head = `${validHead('POST')}transfer-encoding: chunked\r\n\r\n`;
      const data = token(1 + int(40));
      const broken = pick([
        () => `${token(2).replace(/[0-9a-fA-F]/g, 'z')}\r\n${data}\r\n0\r\n\r\n`, // size not hex
        () => `${data.length.toString(16)}\r\n${data}XX\r\n0\r\n\r\n`, // longer than its size
        () => `${data.length.toString(16)}\n${data}\r\n0\r\n\r\n`, // bare LF after the size
        () => `-${data.length.toString(16)}\r\n${data}\r\n0\r\n\r\n`, // negative
        () => `FFFFFFFFFFFFFFFFFFFF\r\n${data}\r\n`, // overflow
        () => `${data.length.toString(16)}\r\n${data}`, // truncated: no CRLF, no last chunk
        () => `${(data.length + 5).toString(16)}\r\n${data}`, // truncated mid-chunk
        () => `${data.length.toString(16)};${'\x01'.repeat(3)}\r\n${data}\r\n0\r\n\r\n`, // control chars in an extension
      ])();
      return Buffer.from(head + broken);
    }
    case 'bad header name': {
      const name = `x${token(int(5))}${String.fromCharCode(pick(BAD_NAME))}${token(int(5))}`;
      return Buffer.from(`${validHead()}${name}: v\r\n\r\n`, 'latin1');
    }
    case 'bad header value': {
      const value = `${token(int(6))}${String.fromCharCode(pick(BAD_VALUE))}${token(int(6))}`;
      return Buffer.from(`${validHead()}x-bad: ${value}\r\n\r\n`, 'latin1');
    }
    case 'bad version or method': {
      const line = pick([
        () => `GET / HTTP/${int(10)}.${2 + int(8)}\r\n`,
        () => `GET / HTTX/1.1\r\n`,
        () => `GET / HTTP/1.1 extra\r\n`,
        () => `${token(3).toLowerCase()} / HTTP/1.1\r\n`,
        () => `GET\r\n`,
        () => `GET /${String.fromCharCode(pick([0, 1, 127]))} HTTP/1.1\r\n`,
        () => `CONNECT ${token(6)}:443 HTTP/1.1\r\n`,
      ])();
      return Buffer.from(`${line}host: fuzz.test\r\n\r\n`, 'latin1');
    }
    case 'oversized header':
      return Buffer.from(`${validHead()}x-huge: ${'h'.repeat(17_000 + int(20_000))}\r\n\r\n`);
    case 'junk HTTP/2 frames':
      return Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), bytes(9 + int(400))]);
    case 'bad TLS hello': {
      const body = bytes(int(600));
      return pick([
        () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (body.length >> 8) & 0xff, body.length & 0xff]), body]), // handshake record, junk inside
        () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), body.subarray(0, 20)]), // truncated ClientHello
        () => Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), bytes(32)]), // application data before any handshake
        () => bytes(1 + int(300)),
        () => Buffer.from(`GET / HTTP/1.1\r\nhost: fuzz.test\r\n\r\n`), // plain HTTP on the TLS port
      ])();
    }
  }
}

const KINDS: Kind[] = ['random bytes', 'truncated request line', 'broken chunked body', 'bad header name', 'bad header value',
  'bad version or method', 'oversized header', 'junk HTTP/2 frames', 'bad TLS hello'];

t.test(`generated malformed input (seed ${SEED}) gets a 4xx or a close, and no worker dies`, async (t) => {
  const upstreamComplete: string[] = [];
  const up = await upstream(t, (req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url !== '/after') upstreamComplete.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)}`);
      res.end('ok');
    });
  });
  const d = new Daemon(t);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'fuzz.key', '-out', 'fuzz.crt', '-days', '2', '-subj', '/CN=fuzz.test'], { cwd: d.dir, stdio: 'pipe' });
  await d.start({
    workers: 2,
    top: 'limits: { header_timeout: 1s, body_timeout: 1s }',
    body: `
listeners:
  - listen: 127.0.0.1:0
  - listen: 127.0.0.3:0
    h2c: true
  - listen: 127.0.0.4:0
    tls: { cert: ${path.join(d.dir, 'fuzz.crt')}, key: ${path.join(d.dir, 'fuzz.key')} }
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /
    upstream: app
`,
  });
  const ports = { h1: await d.port('127.0.0.1:0'), h2c: await d.port('127.0.0.3:0'), tls: await d.port('127.0.0.4:0') };
  const workers = d.workerPids().sort();
  t.equal(workers.length, 2);

  const cases: { kind: Kind; input: Buffer; host: string; port: number }[] = [];
  for (const kind of KINDS) {
    for (let i = 0; i < PER_KIND; i++) {
      const input = generate(kind);
      if (kind === 'bad TLS hello') cases.push({ kind, input, host: '127.0.0.4', port: ports.tls });
      else if (kind === 'junk HTTP/2 frames' || i % 3 === 1) cases.push({ kind, input, host: '127.0.0.3', port: ports.h2c });
      else cases.push({ kind, input, host: '127.0.0.1', port: ports.h1 });
    }
  }
  const bad: string[] = [];
  const outcome: Record<string, Record<string, number>> = {};
  const started = Date.now();
  for (let i = 0; i < cases.length; i += BATCH) {
    await Promise.all(cases.slice(i, i + BATCH).map(async (c) => {
      const r = await rawRequest(c.port, c.input, { host: c.host, end: true, timeoutMs: 30_000 });
      const key = r.statuses.length ? r.statuses.join('+') : r.closed ? 'closed' : 'open';
      (outcome[c.kind] ??= {})[key] = (outcome[c.kind]![key] ?? 0) + 1;
      const acceptable = r.closed && r.statuses.every((s) => (s >= 400 && s < 500) || s === 505);
      if (!acceptable && bad.length < 10) bad.push(`${c.kind} → ${key} after ${r.ms} ms: ${JSON.stringify(c.input.toString('latin1').slice(0, 120))}`);
    }));
  }
  t.comment(`${cases.length} connections in ${Date.now() - started} ms`);
  for (const [kind, o] of Object.entries(outcome)) t.comment(`${kind}: ${JSON.stringify(o)}`);
  t.same(bad, [], 'every connection ended with a 4xx (or 505) or a plain close');
  t.same(d.workerPids().sort(), workers, 'the same two workers are alive');
  t.notOk(d.lines().some((l) => /uncaught|unhandled/.test(String(l.msg))), 'nothing uncaught in the error log');
  t.same(upstreamComplete, [], 'nothing malformed reached the upstream as a complete request');
  const ok = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: ports.h1, path: '/after', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
  });
  t.equal(ok, 200, 'and a normal request is still served');

  // The TLS server runs its own header-timeout sweep (set before listen): slowloris over TLS gets 408 too.
  const slow = await new Promise<{ text: string; ms: number }>((resolve) => {
    const t0 = Date.now();
    let text = '';
    const s = tls.connect({ host: '127.0.0.4', port: ports.tls, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => s.write('GET /slow-tls HTTP/1.1\r\nhost: fuzz.test\r\n'));
    s.on('data', (c: Buffer) => { text += c.toString('latin1'); });
    s.on('error', () => {});
    // The guard must not outlive the connection: a pending timer keeps this test's process alive until it fires.
    const guard = setTimeout(() => s.destroy(), 30_000);
    s.on('close', () => { clearTimeout(guard); resolve({ text, ms: Date.now() - t0 }); });
  });
  t.match(slow.text, /^HTTP\/1\.1 408 /, 'HTTP/1.1 over TLS: 408 for headers that never end');
  t.comment(`closed after ${slow.ms} ms`);

  // CONNECT over h2 on the TLS server: Node's own 405 (the HTTP/2 server has no 'connect' listener).
  const session = http2.connect(`https://127.0.0.4:${ports.tls}`, { rejectUnauthorized: false });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':method': 'CONNECT', ':authority': 'internal.test:443' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
  });
  t.equal(status, 405, 'CONNECT over TLS HTTP/2: 405');
});
