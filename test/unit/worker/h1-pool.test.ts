/**
 * @module H1Pool, our HTTP/1.1 connection pool for plain TCP and unix-socket targets, driven through undici's
 * legacy dispatch-handler protocol against real sockets: raw `net` upstreams on 127.0.0.1 (so every byte on the
 * wire is ours) and `http` ones where that is simpler. Covers the request head and body framing, response framing,
 * keep-alive and idle closing, the connection cap, timeouts and protocol errors, backpressure, abort and close,
 * and https targets (verification, session resumption).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { H1Pool } from '../../../lib/worker/upstream/h1-pool.js';
import { endpointOf, type TargetEndpoint } from '../../../lib/worker/upstream/connect.js';
import { makeCerts } from '../../helpers/certs.js';
import { deadOrigin, listen, sleep, until, upstream, type UpstreamOptions } from './config-fixture.js';

// ---------------------------------------------------------------------------------------------------------------
// The pool and the handler protocol

type CodedError = Error & { code?: string };

interface DispatchOpts {
  path: string;
  method: string;
  headers: string[];
  body: Buffer | Readable | null;
}

/** undici's legacy dispatch handler, as H1Pool drives it. */
interface LegacyHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[]): void;
  onError(err: Error): void;
  /** The chunk, or (undici's typings, and H2Pool) its size and the running total. */
  onBodySent(chunk: Buffer | number, totalBytesSent?: number): void;
  onRequestSent(): void;
}

function tcp(port: number): TargetEndpoint {
  return { kind: 'tcp', host: '127.0.0.1', port, socketPath: null, tls: null };
}

/** A pool on `endpoint`, closed at teardown (bounded: a request the test left hanging must not hold it up). */
function makePool(t: Test, endpoint: TargetEndpoint | number, o: UpstreamOptions = {}, connections = 4): H1Pool {
  const ep = typeof endpoint === 'number' ? tcp(endpoint) : endpoint;
  const origin = ep.kind === 'unix' ? `unix:${ep.socketPath!}` : `http://${ep.host}:${ep.port}`;
  const pool = new H1Pool(upstream('u', [origin], o), ep, connections);
  t.teardown(() => Promise.race([pool.close().catch(() => {}), sleep(3000)]));
  return pool;
}

/** What the handler saw of one request. */
interface Exchange {
  /** Callback names in order: connect, headers:<status>, data, bodySent, requestSent, complete, error. */
  readonly events: string[];
  /** Every onHeaders call, 1xx included. */
  readonly heads: { status: number; headers: string[]; statusText: string }[];
  status: number;
  statusText: string;
  headers: string[];
  readonly chunks: Buffer[];
  trailers: string[] | null;
  error: CodedError | null;
  /** Byte counts of the onBodySent calls. */
  readonly bodySent: number[];
  /** The last totalBytesSent given to onBodySent, if any. */
  bodySentTotal: number | null;
  requestSent: number;
  abort: ((err?: Error) => void) | null;
  resume: (() => void) | null;
  /** onComplete and onError calls together (must end at 1). */
  ends: number;
  /** Settles at the first onComplete or onError; rejects if neither comes within the bound. */
  readonly done: Promise<void>;
  body(): Buffer;
  /** Header values by lower-cased name. */
  header(name: string): string[];
}

interface Hooks {
  onConnect?(abort: (err?: Error) => void, ex: Exchange): void;
  /** Return false to pause. */
  onHeaders?(status: number, ex: Exchange): boolean | void;
  /** Return false to pause. */
  onData?(chunk: Buffer, ex: Exchange): boolean | void;
}

/**
 * Dispatch one request and record every callback. Protocol breaches (a callback after the end, a second end,
 * data before the head, onConnect twice) fail the test wherever they happen.
 */
function send(t: Test, pool: H1Pool, opts: Partial<DispatchOpts> = {}, hooks: Hooks = {}, bound = 10_000): Exchange {
  let settle!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const timer = setTimeout(() => fail(new Error(`request did not end within ${bound} ms; events: ${ex.events.join(' ')}`)), bound);
  const ex: Exchange = {
    events: [], heads: [], status: 0, statusText: '', headers: [], chunks: [], trailers: null, error: null,
    bodySent: [], bodySentTotal: null, requestSent: 0, abort: null, resume: null, ends: 0, done,
    body: () => Buffer.concat(ex.chunks),
    header: (name) => ex.headers.filter((_, i) => i % 2 === 1 && ex.headers[i - 1]!.toLowerCase() === name),
  };
  const breach = (what: string) => t.fail(`handler protocol: ${what} (events: ${ex.events.join(' ')})`);
  const live = (name: string) => {
    if (ex.ends > 0) breach(`${name} after the request ended`);
    ex.events.push(name);
  };
  const end = () => {
    ex.ends++;
    if (ex.ends > 1) breach('a second onComplete/onError');
    clearTimeout(timer);
    settle();
  };
  const handler: LegacyHandler = {
    onConnect(abort) {
      if (ex.events.includes('connect')) breach('onConnect twice');
      live('connect');
      ex.abort = abort;
      hooks.onConnect?.(abort, ex);
    },
    onHeaders(status, rawHeaders, resume, statusText) {
      live(`headers:${status}`);
      if (!ex.events.includes('connect')) breach('onHeaders before onConnect');
      if (!Array.isArray(rawHeaders) || rawHeaders.some((h) => typeof h !== 'string')) breach('rawHeaders is not a flat list of strings');
      ex.heads.push({ status, headers: rawHeaders, statusText });
      if (status >= 200) {
        if (ex.status !== 0) breach('a second final onHeaders');
        ex.status = status;
        ex.statusText = statusText;
        ex.headers = rawHeaders;
        ex.resume = resume;
      }
      return hooks.onHeaders?.(status, ex) !== false;
    },
    onData(chunk) {
      live('data');
      if (ex.status === 0) breach('onData before the final onHeaders');
      ex.chunks.push(Buffer.from(chunk));
      return hooks.onData?.(chunk, ex) !== false;
    },
    onComplete(trailers) {
      live('complete');
      if (ex.status === 0) breach('onComplete without a final onHeaders');
      ex.trailers = trailers;
      end();
    },
    onError(err) {
      live('error');
      ex.error = err as CodedError;
      end();
    },
    onBodySent(chunk, total) {
      live('bodySent');
      ex.bodySent.push(typeof chunk === 'number' ? chunk : chunk.length);
      if (typeof total === 'number') ex.bodySentTotal = total;
    },
    onRequestSent() {
      live('requestSent');
      ex.requestSent++;
    },
  };
  const full: DispatchOpts = { path: '/', method: 'GET', headers: [], body: null, ...opts };
  pool.dispatch(full as unknown as Parameters<H1Pool['dispatch']>[0], handler as unknown as Parameters<H1Pool['dispatch']>[1]);
  return ex;
}

/**
 * Send and wait for the end, then one macrotask turn: the next request a test sends comes as a client's next
 * request would, not from inside the callback chain that ended this one.
 */
async function fetch(t: Test, pool: H1Pool, opts: Partial<DispatchOpts> = {}, hooks: Hooks = {}, bound?: number): Promise<Exchange> {
  const ex = send(t, pool, opts, hooks, bound);
  await ex.done;
  await new Promise((r) => setImmediate(r));
  return ex;
}

/** The request ended well: onComplete, no onError. */
function completed(t: Test, ex: Exchange, what = 'the request completes'): void {
  t.equal(ex.error, null, `${what}${ex.error ? ` (got ${ex.error.code ?? ''} ${ex.error.message})` : ''}`);
  t.ok(ex.events.includes('complete'), `${what}: onComplete called`);
}

/** The request ended with onError and this code (or one of these codes). */
function failed(t: Test, ex: Exchange, code: string | string[] | RegExp, what = 'the request fails'): void {
  const got = ex.error?.code;
  const ok = ex.error !== null && (code instanceof RegExp ? code.test(got ?? '') : (Array.isArray(code) ? code : [code]).includes(got ?? ''));
  t.ok(ok, `${what} with ${String(code)}`, { got: ex.error === null ? `no error; events: ${ex.events.join(' ')}` : `${got ?? '(no code)'}: ${ex.error.message}` });
  t.notOk(ex.events.includes('complete'), `${what}: no onComplete`);
}

// ---------------------------------------------------------------------------------------------------------------
// Raw upstreams

/** An upstream that counts its connections: how many were accepted, how many are open, the most at once. */
interface RawUpstream {
  readonly port: number;
  readonly server: net.Server;
  /** Every accepted socket, in order. */
  readonly sockets: net.Socket[];
  /** Bytes received on each accepted socket, in order. */
  readonly received: Buffer[][];
  /** Accepted sockets whose 'close' has fired. */
  closed: number;
  open: number;
  maxOpen: number;
}

async function rawUpstream(t: Test, onSocket: (s: net.Socket, index: number, up: RawUpstream) => void): Promise<RawUpstream> {
  const server = net.createServer();
  const up = { server, sockets: [], received: [], closed: 0, open: 0, maxOpen: 0 } as unknown as { -readonly [K in keyof RawUpstream]: RawUpstream[K] };
  server.on('connection', (s: net.Socket) => {
    const index = up.sockets.length;
    up.sockets.push(s);
    const received: Buffer[] = [];
    up.received.push(received);
    up.open++;
    up.maxOpen = Math.max(up.maxOpen, up.open);
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => received.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      up.open--;
      up.closed++;
    });
    onSocket(s, index, up);
  });
  up.port = await listen(t, server);
  return up;
}

/** One request as the upstream read it off the wire. */
interface RawRequest {
  method: string;
  path: string;
  version: string;
  /** The head's header lines, [name, value] as sent. */
  fields: [string, string][];
  /** The request's bytes exactly as received: head, then the framed body. */
  raw: Buffer;
  /** The body, de-chunked. */
  body: Buffer;
  /** Index of the connection it came on. */
  conn: number;
}

function values(r: RawRequest, name: string): string[] {
  return r.fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/** Decode a chunked body at the start of `buf`: the body and the bytes used, or null while incomplete. */
function dechunk(buf: Buffer): { body: Buffer; used: number } | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0]!, 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(buf.subarray(at, eol).toString('latin1'))}`);
    if (size === 0) {
      // Trailer section: lines until an empty one.
      let p = eol + 2;
      for (;;) {
        const e = buf.indexOf('\r\n', p);
        if (e < 0) return null;
        if (e === p) return { body: Buffer.concat(parts), used: e + 2 };
        p = e + 2;
      }
    }
    if (buf.length < eol + 2 + size + 2) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    if (buf.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') throw new Error('chunk not followed by CRLF');
    at = eol + 4 + size;
  }
}

/** Parse requests off `s` one after another (keep-alive), calling `onRequest` for each complete one. */
function readRequests(s: net.Socket, conn: number, onRequest: (r: RawRequest) => void): void {
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
      const [method = '', target = '', version = ''] = lines[0]!.split(' ');
      const fields = lines.slice(1).map((l): [string, string] => {
        const colon = l.indexOf(':');
        return [l.slice(0, colon), l.slice(colon + 1).trim()];
      });
      const r: RawRequest = { method, path: target, version, fields, raw: Buffer.alloc(0), body: Buffer.alloc(0), conn };
      const start = headEnd + 4;
      let used: number;
      if (values(r, 'transfer-encoding').some((v) => v.toLowerCase().includes('chunked'))) {
        const c = dechunk(buf.subarray(start));
        if (c === null) return;
        r.body = Buffer.from(c.body);
        used = start + c.used;
      } else {
        const len = Number(values(r, 'content-length')[0] ?? 0);
        if (buf.length < start + len) return;
        r.body = Buffer.from(buf.subarray(start, start + len));
        used = start + len;
      }
      r.raw = Buffer.from(buf.subarray(0, used));
      buf = buf.subarray(used);
      onRequest(r);
    }
  });
}

/** A keep-alive upstream answering every request with what `reply` returns (nothing: no answer). */
async function serve(t: Test, reply: (r: RawRequest, s: net.Socket) => string | Buffer | void, seen: RawRequest[] = []): Promise<RawUpstream & { seen: RawRequest[] }> {
  const up = await rawUpstream(t, (s, index) => readRequests(s, index, (r) => {
    seen.push(r);
    const out = reply(r, s);
    if (out !== undefined && !s.destroyed) s.write(out);
  }));
  return Object.assign(up, { seen });
}

/** `HTTP/1.1 <status>` with a content-length body and extra header lines. */
function response(body = 'ok', extra: string[] = [], status = '200 OK'): string {
  return [`HTTP/1.1 ${status}`, `content-length: ${Buffer.byteLength(body)}`, ...extra, '', body].join('\r\n');
}

/** A non-object-mode body stream of these chunks; `gap` ms between them if given. */
function bodyStream(chunks: (string | Buffer)[], gap = 0): Readable {
  const queue = chunks.map((c) => Buffer.from(c));
  return new Readable({
    read() {
      const next = () => this.push(queue.length > 0 ? queue.shift()! : null);
      if (gap > 0) setTimeout(next, gap);
      else next();
    },
  });
}

/** Wait until every socket the upstream accepted has closed. */
function allClosed(up: RawUpstream, ms = 3000, what = 'the upstream connections to close'): Promise<void> {
  return until(() => up.closed === up.sockets.length, ms, what);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------------------------------------------------------
// The request head

t.test('a GET is written as the request line, the headers in order, then host and connection: keep-alive', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { path: '/a/b?c=1&d', headers: ['X-One', '1', 'x-two', 'two', 'X-One', '3'] }));
  const r = up.seen[0]!;
  t.equal(r.raw.toString('latin1').split('\r\n')[0], 'GET /a/b?c=1&d HTTP/1.1', 'request line');
  const own = r.fields.filter(([n]) => /^x-/i.test(n));
  t.strictSame(own, [['X-One', '1'], ['x-two', 'two'], ['X-One', '3']], 'the given headers, names as given, in order, duplicates kept');
  t.strictSame(values(r, 'host'), [`127.0.0.1:${up.port}`], 'one host header: the target');
  t.strictSame(values(r, 'connection'), ['keep-alive']);
  t.strictSame(values(r, 'content-length'), [], 'no content-length on a bodiless GET');
  t.strictSame(values(r, 'transfer-encoding'), [], 'no transfer-encoding on a bodiless GET');
  t.ok(r.raw.toString('latin1').endsWith('\r\n\r\n'), 'the head ends with an empty line and nothing follows');
});

t.test('a host header in the list is sent instead of the generated one', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { headers: ['Host', 'site.test:8080', 'x-a', 'b'] }));
  const r = up.seen[0]!;
  t.strictSame(values(r, 'host'), ['site.test:8080'], 'exactly one host, the listed one');
});

t.test('keepaliveTimeout 0 sends connection: close and opens a new connection per request', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port, { keepaliveTimeout: 0 });
  completed(t, await fetch(t, pool));
  completed(t, await fetch(t, pool));
  t.strictSame(values(up.seen[0]!, 'connection'), ['close']);
  t.equal(up.sockets.length, 2, 'two connections for two requests');
  await allClosed(up);
});

// ---------------------------------------------------------------------------------------------------------------
// Request body framing

t.test('a Buffer body is sent with a content-length of its length', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  const body = Buffer.from('héllo wörld');
  completed(t, await fetch(t, pool, { method: 'POST', path: '/p', headers: ['content-type', 'text/plain'], body }));
  const r = up.seen[0]!;
  t.strictSame(values(r, 'content-length'), [String(body.length)]);
  t.strictSame(values(r, 'transfer-encoding'), []);
  t.ok(r.body.equals(body), 'body bytes intact');
});

t.test('a Buffer body with a listed content-length carries that header once', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { method: 'PUT', headers: ['Content-Length', '5'], body: Buffer.from('hello') }));
  const r = up.seen[0]!;
  t.strictSame(values(r, 'content-length'), ['5'], 'one content-length');
  t.equal(r.body.toString(), 'hello');
});

t.test('a stream body with a listed content-length is sent as is, not chunked', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { method: 'POST', headers: ['content-length', '9'], body: bodyStream(['abc', 'def', 'ghi'], 5) }));
  const r = up.seen[0]!;
  t.strictSame(values(r, 'content-length'), ['9']);
  t.strictSame(values(r, 'transfer-encoding'), [], 'no transfer-encoding');
  t.equal(r.raw.subarray(r.raw.indexOf('\r\n\r\n') + 4).toString(), 'abcdefghi', 'raw body bytes, unframed');
});

t.test('a stream body without content-length is sent chunked', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  const parts = ['first,', 'second,', Buffer.alloc(70_000, 'x').toString(), 'last'];
  completed(t, await fetch(t, pool, { method: 'POST', body: bodyStream(parts, 2) }));
  const r = up.seen[0]!;
  t.strictSame(values(r, 'transfer-encoding'), ['chunked']);
  t.strictSame(values(r, 'content-length'), [], 'no content-length');
  t.equal(r.body.toString(), parts.join(''), 'de-chunked body intact');
  t.ok(r.raw.toString('latin1').endsWith('\r\n0\r\n\r\n'), 'ends with the last-chunk');
});

t.test('a null body adds no framing to GET, HEAD, DELETE and OPTIONS and content-length: 0 to POST, PUT and PATCH', async (t) => {
  const up = await serve(t, () => response(''));
  const pool = makePool(t, up.port);
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH']) {
    completed(t, await fetch(t, pool, { method }), method);
    const r = up.seen.at(-1)!;
    t.equal(r.method, method);
    const expected = ['POST', 'PUT', 'PATCH'].includes(method) ? ['0'] : [];
    t.strictSame(values(r, 'content-length'), expected, `${method}: content-length ${expected.length > 0 ? '0' : 'absent'}`);
    t.strictSame(values(r, 'transfer-encoding'), [], `${method}: no transfer-encoding`);
  }
  t.equal(up.sockets.length, 1, 'all on one connection');
});

t.test('a listed content-length: 0 on a bodiless POST is not doubled', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { method: 'POST', headers: ['content-length', '0'] }));
  t.strictSame(values(up.seen[0]!, 'content-length'), ['0']);
});

t.test('onBodySent reports every body chunk and onRequestSent fires once, before onComplete', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, { method: 'POST', body: bodyStream(['one', 'two', 'three'], 2) });
  completed(t, ex);
  t.equal(ex.bodySent.reduce((a, b) => a + b, 0), 11, 'the body bytes, without chunked framing');
  if (ex.bodySentTotal !== null) t.equal(ex.bodySentTotal, 11, 'the running total ends at the body length');
  t.equal(ex.requestSent, 1);
  t.ok(ex.events.indexOf('requestSent') < ex.events.indexOf('complete'), 'onRequestSent before onComplete');
  t.ok(ex.events.lastIndexOf('bodySent') < ex.events.indexOf('requestSent'), 'every onBodySent before onRequestSent');
});

// ---------------------------------------------------------------------------------------------------------------
// Request body failures

t.test('a string, a Uint8Array and an iterable body are sent; any other body fails with UND_ERR_INVALID_ARG', async (t) => {
  const up = await serve(t, (r) => response(r.body.toString()));
  const pool = makePool(t, up.port);
  const bodies: [string, unknown, string][] = [
    ['a string', 'hello', 'hello'],
    ['a Uint8Array view', new Uint8Array(Buffer.from('xxhiyy')).subarray(2, 4), 'hi'],
    ['an async iterable', (async function* () { yield Buffer.from('it'); yield Buffer.from('er'); })(), 'iter'],
  ];
  for (const [what, body, want] of bodies) {
    const ex = await fetch(t, pool, { method: 'POST', body: body as Buffer });
    completed(t, ex, what);
    t.equal(ex.body().toString(), want, `${what}: the upstream got the bytes`);
  }
  const bad = await fetch(t, pool, { method: 'POST', body: 42 as unknown as Buffer });
  failed(t, bad, 'UND_ERR_INVALID_ARG', 'a number as the body');
  const after = await fetch(t, pool, { path: '/after' });
  completed(t, after, 'the connection serves the next request');
});

t.test('a stream body longer than its declared content-length fails with UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', async (t) => {
  const up = await rawUpstream(t, () => {});
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, { method: 'POST', headers: ['content-length', '3'], body: bodyStream(['abc', 'def']) });
  failed(t, ex, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  await allClosed(up, 3000, 'the connection to be closed, not kept');
});

t.test('a stream body shorter than its declared content-length fails with UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', async (t) => {
  const up = await rawUpstream(t, () => {});
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, { method: 'POST', headers: ['content-length', '10'], body: bodyStream(['abc']) });
  failed(t, ex, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  await allClosed(up, 3000, 'the connection to be closed, not kept');
});

/** A body that sends 'abc', then is destroyed 20 ms later (with `err`, or without one: closed before its end). */
function brokenBody(err?: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push('abc');
      setTimeout(() => this.destroy(err), 20);
    },
  });
}

t.test("a body stream that errors fails the request with that error's code", async (t) => {
  const up = await rawUpstream(t, () => {});
  const pool = makePool(t, up.port);
  const body = brokenBody(Object.assign(new Error('client went away'), { code: 'E_BODY_BOOM' }));
  const ex = await fetch(t, pool, { method: 'POST', body });
  failed(t, ex, 'E_BODY_BOOM');
  await allClosed(up, 3000, 'the connection to be closed, not kept');
});

t.test('a body stream that closes without ending fails with UND_ERR_ABORTED and sends no last-chunk', async (t) => {
  const up = await rawUpstream(t, () => {});
  const pool = makePool(t, up.port);
  const body = brokenBody();
  const ex = await fetch(t, pool, { method: 'POST', body });
  failed(t, ex, 'UND_ERR_ABORTED');
  await allClosed(up, 3000, 'the connection to be closed, not kept');
  t.notOk(Buffer.concat(up.received[0] ?? []).toString('latin1').includes('\r\n0\r\n\r\n'), 'the upstream never saw a complete chunked body');
});

// ---------------------------------------------------------------------------------------------------------------
// Response framing

t.test('a content-length response reaches onHeaders with names as sent, then onData and onComplete([])', async (t) => {
  const up = await serve(t, () => [
    'HTTP/1.1 201 Made Here', 'X-Mixed-Case: v', 'Set-Cookie: a=1', 'set-cookie: b=2', 'Content-Length: 11', '', 'hello world',
  ].join('\r\n'));
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.status, 201);
  t.equal(ex.statusText, 'Made Here');
  t.strictSame(ex.headers, ['X-Mixed-Case', 'v', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Content-Length', '11'], 'flat raw headers, names as sent, in order');
  t.equal(ex.body().toString(), 'hello world');
  t.strictSame(ex.trailers, [], 'no trailers: an empty list');
});

t.test('a chunked response with chunk extensions and a trailer, written one byte at a time, is delivered intact', async (t) => {
  const wire = [
    'HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '5;foo=bar', 'hello', '1;baz', ' ', '5', 'world', 'A', '0123456789', '0', 'X-Sum: 42', '', '',
  ].join('\r\n');
  const up = await serve(t, (_r, s) => {
    void (async () => {
      for (const byte of Buffer.from(wire)) {
        if (s.destroyed) return;
        s.write(Buffer.of(byte));
        await sleep(1);
      }
    })();
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, {}, {}, 20_000);
  completed(t, ex);
  t.equal(ex.status, 200);
  t.equal(ex.body().toString(), 'hello world0123456789');
  t.strictSame(ex.trailers?.map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v)), ['x-sum', '42'], 'the trailer, read across writes');
  completed(t, await fetch(t, pool), 'a second request on the same connection');
  t.equal(up.sockets.length, 1, 'the chunked response left the connection reusable');
});

t.test('chunked trailers reach onComplete as a flat list', async (t) => {
  const up = await serve(t, () => [
    'HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Trailer: X-Checksum, X-Extra', '', '3', 'abc', '0', 'X-Checksum: 900150983cd24fb0', 'X-Extra: 1', '', '',
  ].join('\r\n'));
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.body().toString(), 'abc');
  t.strictSame(ex.trailers?.map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v)), ['x-checksum', '900150983cd24fb0', 'x-extra', '1']);
});

t.test('a response without content-length or chunking is read until the upstream closes', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ');
    setTimeout(() => s.end('part two'), 50);
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.body().toString(), 'part one, part two');
});

t.test('HEAD, 204 and 304 responses have no body even with a content-length', async (t) => {
  const up = await serve(t, (r) => {
    if (r.method === 'HEAD') return 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n';
    if (r.path === '/204') return 'HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n';
    if (r.path === '/304') return 'HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n';
    return response('after');
  });
  const pool = makePool(t, up.port);
  for (const [method, p, status] of [['HEAD', '/', 200], ['GET', '/204', 204], ['GET', '/304', 304]] as const) {
    const ex = await fetch(t, pool, { method, path: p }, {}, 5000);
    completed(t, ex, `${method} ${p}`);
    t.equal(ex.status, status);
    t.equal(ex.body().length, 0, `${method} ${p}: no body`);
  }
  const last = await fetch(t, pool, { path: '/next' });
  completed(t, last);
  t.equal(last.body().toString(), 'after', 'the next response on the connection is read from the right place');
  t.equal(up.sockets.length, 1, 'one connection throughout');
});

t.test('a 103 Early Hints response reaches onHeaders before the final response', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
    setTimeout(() => s.write(response('final')), 30);
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.strictSame(ex.heads.map((h) => h.status), [103, 200], 'interim, then final');
  t.strictSame(ex.heads[0]!.headers, ['Link', '</style.css>; rel=preload']);
  t.equal(ex.status, 200);
  t.equal(ex.body().toString(), 'final');
});

// ---------------------------------------------------------------------------------------------------------------
// Keep-alive

t.test('two sequential requests reuse one upstream connection', async (t) => {
  const up = await serve(t, (r) => response(`answer ${r.path}`));
  const pool = makePool(t, up.port);
  const a = await fetch(t, pool, { path: '/1' });
  const b = await fetch(t, pool, { path: '/2' });
  t.equal(a.body().toString(), 'answer /1');
  t.equal(b.body().toString(), 'answer /2');
  t.equal(up.sockets.length, 1, 'one connection');
  t.equal(pool.connections, 1, 'the pool holds it idle');
});

t.test('a response with connection: close makes the next request open a new connection', async (t) => {
  const up = await serve(t, () => response('bye', ['connection: close']));
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool));
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 2);
  await until(() => up.closed >= 1, 3000, 'the first connection to be closed by the pool');
});

t.test('an HTTP/1.0 response without connection: keep-alive is not reused', async (t) => {
  const up = await serve(t, () => 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool));
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 2);
  await until(() => up.closed >= 1, 3000, 'the first connection to be closed by the pool');
});

t.test('an HTTP/1.0 response with connection: keep-alive is reused', async (t) => {
  const up = await serve(t, () => 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\nok');
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool));
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 1);
});

t.test('a response read until close leaves nothing to reuse: the next request opens a new connection', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.end('HTTP/1.1 200 OK\r\n\r\nuntil close');
  });
  const pool = makePool(t, up.port);
  const a = await fetch(t, pool);
  const b = await fetch(t, pool);
  t.equal(a.body().toString(), 'until close');
  t.equal(b.body().toString(), 'until close');
  t.equal(up.sockets.length, 2);
});

t.test('an idle connection is closed after keepaliveTimeout', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port, { keepaliveTimeout: 300 });
  completed(t, await fetch(t, pool));
  const idleSince = Date.now();
  await allClosed(up, 5000, 'the idle connection to be closed');
  const idle = Date.now() - idleSince;
  t.ok(idle >= 200, `kept at least about 300 ms (${idle} ms)`);
  await until(() => pool.connections === 0, 2000, 'the pool to count no connection');
});

t.test('an upstream keep-alive: timeout=3 hint shortens the idle time to about 1 s', async (t) => {
  const up = await serve(t, () => response('ok', ['Keep-Alive: timeout=3']));
  const pool = makePool(t, up.port, { keepaliveTimeout: 30_000 });
  completed(t, await fetch(t, pool));
  const idleSince = Date.now();
  await allClosed(up, 10_000, 'the idle connection to be closed well before keepaliveTimeout');
  const idle = Date.now() - idleSince;
  t.ok(idle >= 700, `kept at least about 1000 ms (${idle} ms)`);
});

t.test('an upstream keep-alive: timeout=2 hint closes the connection at once', async (t) => {
  const up = await serve(t, () => response('ok', ['Keep-Alive: timeout=2']));
  const pool = makePool(t, up.port, { keepaliveTimeout: 30_000 });
  completed(t, await fetch(t, pool));
  await allClosed(up, 2000, 'the connection to be closed after its response');
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 2, 'the next request on a new connection');
});

t.test('an idle connection the upstream closed is not reused: the next request succeeds on a new one', async (t) => {
  const up = await serve(t, (r, s) => {
    s.write(response(`n${r.conn}`));
    if (r.conn === 0) setTimeout(() => s.end(), 50);
  });
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool));
  await allClosed(up, 3000, 'the upstream to close the first connection');
  await until(() => pool.connections === 0, 3000, 'the pool to drop the connection the upstream closed');
  const b = await fetch(t, pool);
  completed(t, b);
  t.equal(b.body().toString(), 'n1', 'answered on the second connection');
  t.equal(up.sockets.length, 2);
});

t.test('bytes an idle connection received in the same turn as a new request send that request to another connection', async (t) => {
  const up = await serve(t, (r) => response(r.path));
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { path: '/a' }));
  await sleep(50);
  // On the wire before the request is dispatched, read by the pool only in the event loop's next poll: written at
  // once, the request would take them for its response.
  up.sockets[0]!.write(response('STRAY!'));
  const b = await fetch(t, pool, { path: '/b' });
  completed(t, b);
  t.equal(b.body().toString(), '/b', 'the answer to /b, not the stray response');
  t.equal(up.sockets.length, 2, 'sent on a new connection');
  t.equal(up.seen.filter((r) => r.conn === 0).length, 1, 'nothing more was written on the dirty connection');
});

t.test('an idle connection the upstream ended in the same turn as a new request sends it to another connection', async (t) => {
  const up = await serve(t, (r) => response(r.path));
  const pool = makePool(t, up.port);
  completed(t, await fetch(t, pool, { path: '/a' }));
  await sleep(50);
  up.sockets[0]!.end();
  const b = await fetch(t, pool, { path: '/b', method: 'POST', body: Buffer.from('x') });
  completed(t, b, 'a POST, which the proxy would not retry, completes');
  t.equal(b.body().toString(), '/b');
  t.equal(up.sockets.length, 2, 'sent on a new connection');
});

t.test('a queued request is not written on a connection the upstream ended right behind the previous response', async (t) => {
  // connections: 1, so /b waits for /a's connection; the end comes in the same write as /a's answer.
  const up = await serve(t, (r, s) => {
    if (r.path !== '/a') return response(r.path);
    s.end(response('/a'));
  });
  const pool = makePool(t, up.port, {}, 1);
  const a = send(t, pool, { path: '/a' });
  const b = send(t, pool, { path: '/b', method: 'POST', body: Buffer.from('x') });
  await Promise.all([a.done, b.done]);
  completed(t, a);
  completed(t, b, 'the queued POST, which the proxy would not retry, completes');
  t.equal(b.body().toString(), '/b');
  t.equal(up.sockets.length, 2, 'on a new connection');
});

t.test('bytes after a bodiless response in the same read make the connection unusable', async (t) => {
  const cases: [string, string, string][] = [
    ['HEAD answered with a body', 'HEAD', 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nEVIL'],
    ['a 204 followed by a second response', 'GET', 'HTTP/1.1 204 No Content\r\n\r\n' + response('EVIL')],
    ['content-length: 0 followed by a second response', 'GET', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n' + response('EVIL')],
  ];
  for (const [what, method, wire] of cases) {
    await t.test(what, async (t) => {
      let n = 0;
      const up = await serve(t, () => (++n === 1 ? wire : response('second')));
      const pool = makePool(t, up.port);
      completed(t, await fetch(t, pool, { method }), 'the first request');
      const b = await fetch(t, pool);
      completed(t, b, 'the next request');
      t.equal(b.body().toString(), 'second', 'the next request gets its own answer');
      t.equal(up.sockets.length, 2, 'on a new connection');
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The connection cap

t.test('with connections = 2, six concurrent requests never open more than two connections and all complete', async (t) => {
  const up = await serve(t, (r, s) => {
    setTimeout(() => s.write(response(`done ${r.path}`)), 100);
  });
  const pool = makePool(t, up.port, {}, 2);
  let poolMax = 0;
  const sample = () => {
    poolMax = Math.max(poolMax, pool.connections);
  };
  const exs = Array.from({ length: 6 }, (_, i) => send(t, pool, { path: `/${i}` }, { onConnect: sample, onHeaders: sample }, 15_000));
  sample();
  await Promise.all(exs.map((e) => e.done));
  exs.forEach((e, i) => {
    completed(t, e, `request ${i}`);
    t.equal(e.body().toString(), `done /${i}`);
  });
  t.ok(up.maxOpen <= 2, `the upstream saw at most 2 connections at once (${up.maxOpen})`);
  t.ok(poolMax <= 2, `pool.connections never above 2 (${poolMax})`);
});

// ---------------------------------------------------------------------------------------------------------------
// Connection failures and timeouts

t.test('nothing listening fails with ECONNREFUSED', async (t) => {
  const port = Number(new URL(await deadOrigin()).port);
  const pool = makePool(t, port);
  const ex = await fetch(t, pool);
  failed(t, ex, 'ECONNREFUSED');
  t.notOk(ex.events.includes('connect'), 'no onConnect without a socket');
  await until(() => pool.connections === 0, 2000, 'the failed connection to be forgotten');
});

/**
 * A port whose connects never complete: a child process listens with a backlog of 1 and blocks its event loop,
 * so it never accepts; once a few fillers have taken the accept queue, Linux drops further SYNs. Null (and the
 * test skips) when a probe connect still succeeds.
 */
async function blackhole(t: Test): Promise<number | null> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
      process.exit(0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  // SIGKILL: the child's event loop is blocked, and a test runner may leave SIGTERM ignored for its children.
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the blackhole child did not start')), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(Number(out.trim()));
      }
    });
  });
  const fillers = Array.from({ length: 6 }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  t.teardown(() => fillers.forEach((f) => f.destroy()));
  await sleep(300);
  const probe = net.connect(port, '127.0.0.1').on('error', () => {});
  const connected = await new Promise<boolean>((resolve) => {
    probe.once('connect', () => resolve(true));
    setTimeout(() => resolve(false), 1000);
  });
  probe.destroy();
  return connected ? null : port;
}

t.test('a connect that never completes fails with UND_ERR_CONNECT_TIMEOUT', async (t) => {
  const port = await blackhole(t);
  if (port === null) return void t.skip('could not make a connect hang on this machine', async () => {});
  const pool = makePool(t, port, { connectTimeout: 300 });
  const start = Date.now();
  const ex = await fetch(t, pool);
  const took = Date.now() - start;
  failed(t, ex, 'UND_ERR_CONNECT_TIMEOUT');
  t.ok(took >= 200, `not before the 300 ms connect timeout (${took} ms)`);
});

t.test('no response head within responseTimeout fails with UND_ERR_HEADERS_TIMEOUT', async (t) => {
  const up = await serve(t, () => {});
  const pool = makePool(t, up.port, { responseTimeout: 200 });
  const start = Date.now();
  const ex = await fetch(t, pool);
  const took = Date.now() - start;
  failed(t, ex, 'UND_ERR_HEADERS_TIMEOUT');
  t.ok(took >= 150, `not before the 200 ms response timeout (${took} ms)`);
  await allClosed(up, 3000, 'the timed-out connection to be closed');
});

t.test('a response body stalled longer than idleTimeout fails with UND_ERR_BODY_TIMEOUT', async (t) => {
  const up = await serve(t, () => 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
  const pool = makePool(t, up.port, { idleTimeout: 200 });
  let headersAt = 0;
  const ex = await fetch(t, pool, {}, { onHeaders: () => void (headersAt = Date.now()) });
  const took = Date.now() - headersAt;
  failed(t, ex, 'UND_ERR_BODY_TIMEOUT');
  t.equal(ex.body().toString(), 'abc', 'what came was delivered');
  t.ok(took >= 150, `not before 200 ms of silence (${took} ms)`);
  await allClosed(up, 3000, 'the timed-out connection to be closed');
});

t.test('a paused response is not timed out by idleTimeout while paused', async (t) => {
  let sock: net.Socket | null = null;
  const up = await serve(t, (_r, s) => {
    sock = s;
    return 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello';
  });
  const pool = makePool(t, up.port, { idleTimeout: 300 });
  // Pause at the first chunk; the test resumes.
  const ex = send(t, pool, {}, { onData: (_c, e) => e.chunks.length > 1 });
  await until(() => ex.chunks.length > 0, 5000, 'the first body bytes');
  await sleep(1200);
  t.equal(ex.error, null, 'no error after 4 idle timeouts while paused');
  t.equal(ex.ends, 0, 'still running');
  sock!.write('world');
  ex.resume!();
  await ex.done;
  completed(t, ex);
  t.equal(ex.body().toString(), 'helloworld');
});

t.test('the upstream closing before the response head fails with UND_ERR_SOCKET or ECONNRESET', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.end();
  });
  const pool = makePool(t, up.port);
  failed(t, await fetch(t, pool), ['UND_ERR_SOCKET', 'ECONNRESET']);
});

t.test('the upstream closing in the middle of a content-length body fails with UND_ERR_SOCKET or ECONNRESET', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this');
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  failed(t, ex, ['UND_ERR_SOCKET', 'ECONNRESET']);
  t.equal(ex.status, 200, 'the head was relayed first');
});

t.test('the upstream closing in the middle of a chunked body fails with UND_ERR_SOCKET or ECONNRESET', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  failed(t, ex, ['UND_ERR_SOCKET', 'ECONNRESET']);
  t.equal(ex.body().toString(), 'hello', 'the complete chunk was delivered');
});

t.test('malformed responses fail with an HPE_ code', async (t) => {
  const cases: [string, string][] = [
    ['a status line with a non-numeric code', 'HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nthis is not a header\r\ncontent-length: 0\r\n\r\n'],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['both content-length and transfer-encoding', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['two different content-lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!'],
  ];
  for (const [what, wire] of cases) {
    await t.test(`${what} fails with an HPE_ code`, async (t) => {
      const up = await serve(t, () => wire);
      const pool = makePool(t, up.port);
      failed(t, await fetch(t, pool), /^HPE_/);
      await allClosed(up, 3000, 'the connection to be closed');
    });
  }
});

t.test('a transfer-encoding other than chunked fails with HPE_INVALID_TRANSFER_ENCODING', async (t) => {
  // Relayed de-chunked without its header, a gzip-coded body would reach the client coded with nothing saying so.
  for (const te of ['gzip, chunked', 'chunked, gzip', 'gzip']) {
    await t.test(te, async (t) => {
      const up = await serve(t, () => `HTTP/1.1 200 OK\r\ntransfer-encoding: ${te}\r\n\r\n2\r\nok\r\n0\r\n\r\n`);
      const pool = makePool(t, up.port);
      failed(t, await fetch(t, pool), 'HPE_INVALID_TRANSFER_ENCODING');
    });
  }
});

t.test('a response head with bare LF line ends fails with HPE_CR_EXPECTED, not at the response timeout', async (t) => {
  for (const wire of ['HTTP/1.1 200 OK\ncontent-length: 2\n\nok', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\nok']) {
    await t.test(JSON.stringify(wire), async (t) => {
      const up = await serve(t, () => wire);
      const pool = makePool(t, up.port, { responseTimeout: 60_000 });
      failed(t, await fetch(t, pool, {}, {}, 30_000), 'HPE_CR_EXPECTED');
    });
  }
});

t.test('chunk sizes with leading zeros are accepted; one above 2^48 fails with HPE_INVALID_CHUNK_SIZE', async (t) => {
  const up = await serve(t, (r) => r.path === '/big'
    ? 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000000000001\r\nx\r\n'
    : 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n00000000000000000\r\n\r\n');
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.body().toString(), 'hello');
  failed(t, await fetch(t, pool, { path: '/big' }), 'HPE_INVALID_CHUNK_SIZE');
});

t.test('a head just under 16 KiB is accepted whether its blank line comes in one read or split', async (t) => {
  const start = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-pad: ';
  const head = start + 'a'.repeat(16383 - start.length);
  for (const split of [false, true]) {
    await t.test(split ? 'split before its last LF' : 'in one read', async (t) => {
      const up = await serve(t, (_r, s) => {
        if (!split) return `${head}\r\n\r\nok`;
        s.write(`${head}\r\n\r`);
        setTimeout(() => { if (!s.destroyed) s.write('\nok'); }, 30);
      });
      const pool = makePool(t, up.port);
      const ex = await fetch(t, pool);
      completed(t, ex);
      t.equal(ex.body().toString(), 'ok');
    });
  }
});

t.test('a response head over 16 KiB fails with UND_ERR_HEADERS_OVERFLOW', async (t) => {
  const big = Array.from({ length: 20 }, (_, i) => `x-filler-${i}: ${'a'.repeat(1000)}`);
  const up = await serve(t, () => response('ok', big));
  const pool = makePool(t, up.port);
  failed(t, await fetch(t, pool), 'UND_ERR_HEADERS_OVERFLOW');
});

t.test('a 12 KiB response head is accepted', async (t) => {
  const big = Array.from({ length: 12 }, (_, i) => `x-filler-${i}: ${'a'.repeat(1000)}`);
  const up = await serve(t, () => response('ok', big));
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.header('x-filler-11')[0]?.length, 1000);
});

t.test('unsolicited 100 Continue responses are read past: the final response is delivered and the connection reused', async (t) => {
  const up = await serve(t, (r) => (r.method === 'POST' ? 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\ncontent-length: 3\r\n\r\n' : '') + response(r.path));
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, { method: 'POST', path: '/up', body: Buffer.from('data') });
  completed(t, ex);
  t.equal(ex.status, 200);
  t.equal(ex.body().toString(), '/up', 'the final response, its body read from the right place (a 1xx has none)');
  t.notOk(ex.heads.some((h) => h.status === 100), 'no onHeaders(100)');
  const next = await fetch(t, pool, { path: '/next' });
  completed(t, next);
  t.equal(next.body().toString(), '/next');
  t.equal(up.sockets.length, 1, 'one connection throughout');
});

t.test('1xx responses do not put off responseTimeout', async (t) => {
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => { for (const i of timers) clearInterval(i); });
  const up = await rawUpstream(t, (s) => {
    timers.push(setInterval(() => { if (!s.destroyed) s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n'); }, 50));
  });
  const pool = makePool(t, up.port, { responseTimeout: 300 });
  failed(t, await fetch(t, pool, {}, {}, 10_000), 'UND_ERR_HEADERS_TIMEOUT');
});

t.test('an unsolicited 101 fails the request: the connection is no longer HTTP', async (t) => {
  const up = await serve(t, () => 'HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n' + response());
  const pool = makePool(t, up.port);
  failed(t, await fetch(t, pool), 'UND_ERR_SOCKET');
  await allClosed(up, 3000, 'the connection to be closed');
});

// ---------------------------------------------------------------------------------------------------------------
// Backpressure

/** `payload` in chunked framing, in chunks of an odd size so that they straddle the socket's reads. */
function chunked(payload: Buffer, size = 7919): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const piece = payload.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

t.test('onData returning false stops delivery until resume(), and the whole body then arrives intact', async (t) => {
  const size = 4 * 1024 * 1024;
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
  const framings: [string, string, Buffer][] = [
    ['content-length', `content-length: ${size}`, payload],
    ['chunked', 'transfer-encoding: chunked', chunked(payload)],
  ];
  for (const [name, header, wire] of framings) {
    await t.test(`with a ${name} body`, async (t) => {
      const up = await serve(t, (r, s) => {
        if (r.path === '/next') return response('next');
        s.write(`HTTP/1.1 200 OK\r\n${header}\r\n\r\n`);
        s.write(wire);
      });
      const pool = makePool(t, up.port, { idleTimeout: 5000 });
      let calls = 0;
      const ex = send(t, pool, {}, {
        onData: (_c, e) => {
          calls++;
          if (calls === 1) return false; // resumed by the test below
          if (calls % 16 === 0) {
            setImmediate(() => e.resume!());
            return false;
          }
          return true;
        },
      }, 20_000);
      await until(() => calls === 1, 5000, 'the first chunk');
      await sleep(300);
      t.equal(calls, 1, 'no onData while paused');
      ex.resume!();
      await ex.done;
      completed(t, ex);
      const body = ex.body();
      t.equal(body.length, size, 'every byte');
      t.equal(sha(body), sha(payload), 'the same bytes');
      t.ok(calls > 16, `delivered in many chunks, paused again on the way (${calls})`);
      await new Promise((r) => setImmediate(r));
      const next = await fetch(t, pool, { path: '/next' });
      t.equal(next.body().toString(), 'next', 'the next response on the connection is read from the right place');
      t.equal(up.sockets.length, 1, 'on the same connection');
    });
  }
});

t.test('a paused until-close body completes once resumed, though the upstream closed meanwhile', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.end('HTTP/1.1 200 OK\r\n\r\nfirst part, second part');
  });
  const pool = makePool(t, up.port, { idleTimeout: 5000 });
  const ex = send(t, pool, {}, { onData: (_c, e) => e.chunks.length > 1 });
  await until(() => ex.chunks.length > 0, 5000, 'the first body bytes');
  await allClosed(up, 3000, 'the upstream to close');
  await sleep(100);
  t.equal(ex.ends, 0, 'not ended while paused');
  ex.resume!();
  await ex.done;
  completed(t, ex);
  t.equal(ex.body().toString(), 'first part, second part');
});

/** A client that reads one chunk at a time: pauses on every chunk, resumes 10 ms later, until the end. */
function slowReader(t: Test, pool: H1Pool): Exchange {
  const ex = send(t, pool, {}, {
    onData: (_c, e) => {
      setTimeout(() => e.resume!(), 10);
      return false;
    },
  });
  return ex;
}

for (const [name, head] of [['with connection: close', 'connection: close\r\n'], ['that the upstream closes later (keep-alive)', '']] as const) {
  t.test(`a chunked response read slowly by a paused client arrives whole, ${name}`, async (t) => {
    const piece = 'x'.repeat(400);
    const body = Array.from({ length: 50 }, () => `${piece.length.toString(16)}\r\n${piece}\r\n`).join('') + '0\r\n\r\n';
    const up = await serve(t, (_r, s) => {
      s.write(`HTTP/1.1 200 OK\r\n${head}transfer-encoding: chunked\r\n\r\n${body}`);
      setTimeout(() => s.end(), 50);
    });
    const pool = makePool(t, up.port, { idleTimeout: 5000 });
    const ex = slowReader(t, pool);
    await ex.done;
    completed(t, ex);
    t.equal(ex.body().length, 50 * 400, 'every byte');
  });
}

t.test('a body read until close that the upstream ends with a reset is complete', async (t) => {
  const up = await serve(t, (_r, s) => {
    s.write('HTTP/1.1 200 OK\r\n\r\nall of it', () => setTimeout(() => s.resetAndDestroy(), 50));
  });
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  t.equal(ex.body().toString(), 'all of it');
});

// ---------------------------------------------------------------------------------------------------------------
// Abort (onConnect's abort function)

t.test('abort() in onConnect fails with UND_ERR_ABORTED and writes nothing', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool, { method: 'POST', body: Buffer.from('secret') }, { onConnect: (abort) => abort() });
  failed(t, ex, 'UND_ERR_ABORTED');
  await sleep(100);
  t.equal(Buffer.concat(up.received[0] ?? []).length, 0, 'the upstream received no byte');
});

t.test('a connection whose request was aborted in onConnect, before any byte was written, serves the next request', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  failed(t, await fetch(t, pool, {}, { onConnect: (abort) => abort() }), 'UND_ERR_ABORTED');
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 1, 'the same connection: nothing of the aborted request reached it');
  t.equal(up.seen.length, 1, 'the upstream saw only the second request');
});

t.test('abort(err) during the response body fails with that error and the connection is not reused', async (t) => {
  const up = await serve(t, (r) => (r.path === '/slow' ? 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial' : response()));
  const pool = makePool(t, up.port);
  const mine = Object.assign(new Error('client left'), { code: 'E_MINE' });
  const ex = await fetch(t, pool, { path: '/slow' }, { onData: (_c, e) => void setImmediate(() => e.abort!(mine)) });
  t.equal(ex.error, mine, 'onError gets the error given to abort');
  await until(() => up.closed === 1, 3000, 'the aborted connection to be closed');
  completed(t, await fetch(t, pool, { path: '/next' }));
  t.equal(up.sockets.length, 2, 'the next request on a new connection');
});

t.test('abort() after completion does nothing and the connection stays reusable', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  const ex = await fetch(t, pool);
  completed(t, ex);
  ex.abort!();
  ex.abort!(new Error('late'));
  await sleep(50);
  t.equal(ex.ends, 1, 'no onError after onComplete');
  completed(t, await fetch(t, pool));
  t.equal(up.sockets.length, 1, 'the connection was reused');
});

// ---------------------------------------------------------------------------------------------------------------
// close()

t.test('a dispatch after close() fails asynchronously with UND_ERR_CLOSED', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port);
  await pool.close();
  const ex = send(t, pool);
  const endedInDispatch = ex.ends > 0;
  await ex.done;
  t.notOk(endedInDispatch, 'onError was not called inside dispatch()');
  failed(t, ex, 'UND_ERR_CLOSED');
  t.equal(up.sockets.length, 0, 'no connection opened');
});

t.test('a request in flight when close() is called still completes, then close() resolves', async (t) => {
  const up = await serve(t, (_r, s) => {
    setTimeout(() => s.write(response('late but fine')), 300);
  });
  const pool = makePool(t, up.port);
  const ex = send(t, pool);
  await until(() => up.seen.length === 1, 5000, 'the upstream to get the request');
  let endedBeforeClose = false;
  await Promise.race([
    pool.close().then(() => {
      endedBeforeClose = ex.ends === 1;
    }),
    sleep(8000),
  ]);
  await ex.done;
  completed(t, ex);
  t.equal(ex.body().toString(), 'late but fine');
  t.ok(endedBeforeClose, 'close() resolved after the request ended');
});

t.test('requests waiting for a connection when close() is called are still served', async (t) => {
  const up = await serve(t, (r, s) => {
    setTimeout(() => s.write(response(`served ${r.path}`)), 100);
  });
  const pool = makePool(t, up.port, {}, 1);
  let poolMax = 0;
  const sample = () => {
    poolMax = Math.max(poolMax, pool.connections);
  };
  const exs = ['/a', '/b', '/c'].map((p) => send(t, pool, { path: p }, { onConnect: sample, onHeaders: sample }));
  await until(() => up.seen.length === 1, 5000, 'the first request at the upstream');
  const closing = pool.close();
  await Promise.all(exs.map((e) => e.done));
  exs.forEach((e, i) => {
    completed(t, e, `request ${i}`);
    t.equal(e.body().toString(), `served /${'abc'[i]}`);
  });
  t.ok(await Promise.race([closing.then(() => true), sleep(5000).then(() => false)]), 'close() resolves');
  // Counted by the pool: the upstream may accept a new connection before it sees the last one close.
  t.ok(poolMax <= 1, `pool.connections never above 1 (${poolMax})`);
});

t.test('close() called twice resolves both promises', async (t) => {
  const up = await serve(t, (_r, s) => {
    setTimeout(() => s.write(response()), 100);
  });
  const pool = makePool(t, up.port);
  const ex = send(t, pool);
  await until(() => up.seen.length === 1, 5000, 'the request at the upstream');
  const first = pool.close();
  const second = pool.close();
  let resolved = 0;
  await Promise.race([
    Promise.all([first.then(() => resolved++), second.then(() => resolved++)]),
    sleep(5000),
  ]);
  t.equal(resolved, 2, 'both resolved');
  await ex.done;
  completed(t, ex);
});

t.test('close() resolves once the idle sockets are closed', async (t) => {
  const up = await serve(t, () => response());
  const pool = makePool(t, up.port, { keepaliveTimeout: 60_000 });
  completed(t, await fetch(t, pool));
  t.equal(pool.connections, 1, 'one idle connection');
  await pool.close();
  t.equal(pool.connections, 0, 'none once close() resolved');
  await allClosed(up, 3000, 'the upstream to see the connection closed');
});

// ---------------------------------------------------------------------------------------------------------------
// Unix sockets

t.test('a unix socket endpoint is served, and its connection reused', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'h1-pool-'));
  const socketPath = path.join(dir, 'up.sock');
  let conns = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`unix ${req.method} ${req.url}`));
  });
  server.on('connection', () => conns++);
  await new Promise<void>((r) => server.listen(socketPath, () => r()));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => {
      rmSync(dir, { recursive: true, force: true });
      r();
    });
  }));
  const pool = makePool(t, { kind: 'unix', host: 'localhost', port: 0, socketPath, tls: null });
  const a = await fetch(t, pool, { path: '/u' });
  const b = await fetch(t, pool, { method: 'POST', path: '/v', body: Buffer.from('x') });
  completed(t, a);
  completed(t, b);
  t.equal(a.body().toString(), 'unix GET /u');
  t.equal(b.body().toString(), 'unix POST /v');
  t.equal(conns, 1, 'one connection for both');
});

// ---------------------------------------------------------------------------------------------------------------
// Early responses

t.test('a response that arrives before the upstream read the whole body is delivered, and its connection not reused', async (t) => {
  const up = await serve(t, () => {});
  // Answer as soon as the head is in, keep-alive, without reading the body.
  up.server.prependListener('connection', (s: net.Socket) => {
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        s.off('data', onData);
        s.write(response('too large', [], '413 Payload Too Large'));
      }
    };
    s.on('data', onData);
  });
  const pool = makePool(t, up.port);
  let sent = false;
  const body = new Readable({
    read() {
      if (sent) return; // one chunk, then the body stalls: it never ends
      sent = true;
      this.push(Buffer.alloc(1024, 'b'));
    },
  });
  const ex = await fetch(t, pool, { method: 'POST', path: '/upload', headers: ['content-length', String(1024 * 1024)], body });
  completed(t, ex);
  t.equal(ex.status, 413);
  t.equal(ex.body().toString(), 'too large');
  await sleep(100);
  t.equal(ex.ends, 1, 'no onError after onComplete');
  await until(() => up.closed === 1, 3000, 'the connection with a half-sent body to be closed');
  const next = await fetch(t, pool, { path: '/next' });
  t.equal(next.status, 413, 'the next request is answered');
  t.equal(up.sockets.length, 2, 'on a new connection');
});

t.test('an https target is verified with tls.ca and server_name, and later connections resume the TLS session', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'baton-h1-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  const resumed: boolean[] = [];
  const server = https.createServer({ cert: read('site.crt'), key: read('site.key') }, (_req, res) => {
    // connection: close, so that every request needs a new connection (and a handshake).
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end('secure');
  });
  server.on('request', (req) => resumed.push((req.socket as import('node:tls').TLSSocket).isSessionReused()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as net.AddressInfo).port;
  const tls = { caFile: null, ca: read('ca.crt'), certFile: null, keyFile: null, cert: null, key: null, serverName: 'site.test', verify: true };
  const up = upstream('s', [`https://127.0.0.1:${port}`], { tls });
  const pool = new H1Pool(up, endpointOf(up, up.targets[0]!), 4);
  t.teardown(() => pool.close());
  for (let i = 0; i < 3; i++) {
    const ex = await fetch(t, pool);
    completed(t, ex);
    t.equal(Buffer.concat(ex.chunks).toString(), 'secure');
  }
  t.strictSame(resumed, [false, true, true], 'the first connection makes a session, the next ones resume it');
});

t.test('an https target whose certificate is not trusted fails with the verification error, nothing sent', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'baton-h1-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  let requests = 0;
  const server = https.createServer({ cert: read('site.crt'), key: read('site.key') }, (_req, res) => { requests++; res.end('no'); });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as net.AddressInfo).port;
  const up = upstream('s', [`https://127.0.0.1:${port}`], { tls: { caFile: null, ca: null, certFile: null, keyFile: null, cert: null, key: null, serverName: 'site.test', verify: true } });
  const pool = new H1Pool(up, endpointOf(up, up.targets[0]!), 4);
  t.teardown(() => pool.close());
  const ex = await fetch(t, pool);
  failed(t, ex, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.equal(requests, 0, 'the upstream got no request');
});
