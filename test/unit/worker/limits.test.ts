/** @module Client-limit helpers: Host validation, header count and size, the streaming body limit, Expect, fd budget. */
import type http from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { DEFAULT_LIMITS } from '../../../lib/config/sections/limits.js';
import { BodyLimit, awaitsContinue, connectionBudget, headersExceeded, holdContinue, isValidHost } from '../../../lib/worker/limits.js';
import { routingPath } from '../../../lib/worker/router.js';
import { BadRequest, buildUpstreamHead } from '../../../lib/worker/headers.js';

t.test('a Host names a host and an optional port, nothing else', async (t) => {
  for (const ok of ['example.com', 'a.b.c', 'example.com:8080', 'localhost:', '127.0.0.1', '[::1]', '[::1]:443', '[::ffff:10.0.0.1]:80', 'x_y.internal', 'example.com.', 'API.Example.COM', ''])
    t.ok(isValidHost(ok), JSON.stringify(ok));
  for (const bad of ['a b', 'a/b', 'example.com/admin', 'user@example.com', '.a', 'a..b', '..', '[zz]', '[::1', 'a:80x', 'a:123456', ':80', 'a\\b', 'a%2f', 'a\tb', 'é.com', 'x'.repeat(300)])
    t.notOk(isValidHost(bad), JSON.stringify(bad));
});

function fakeReq(raw: string[], major = 1): http.IncomingMessage {
  return { rawHeaders: raw, httpVersionMajor: major } as unknown as http.IncomingMessage;
}

t.test('headersExceeded counts header fields (not HTTP/2 pseudo-headers) and, for HTTP/2, the header list size', async (t) => {
  const limits = { ...DEFAULT_LIMITS, maxHeaders: 3, maxHeaderSize: 100 };
  const fields = (n: number) => Array.from({ length: n }, (_, i) => [`x-${i}`, 'v']).flat();
  t.notOk(headersExceeded(fakeReq(fields(3)), limits), '3 fields is the limit');
  t.ok(headersExceeded(fakeReq(fields(4)), limits), '4 is over');
  const pseudo = [':method', 'GET', ':path', '/', ':scheme', 'http', ':authority', 'a'];
  t.notOk(headersExceeded(fakeReq([...pseudo, ...fields(3)], 2), limits), 'HTTP/2: pseudo-headers are not fields');
  t.ok(headersExceeded(fakeReq([...pseudo, ...fields(4)], 2), limits));
  t.ok(headersExceeded(fakeReq([...pseudo, 'x-big', 'b'.repeat(100)], 2), limits), 'HTTP/2: a header list over max_header_size');
});

async function through(limit: number, chunks: Buffer[]): Promise<{ bytes: number; err: (Error & { code?: string }) | null }> {
  let bytes = 0;
  try {
    await pipeline(Readable.from(chunks), new BodyLimit(limit), new Writable({ write(c: Buffer, _e, cb) { bytes += c.length; cb(); } }));
    return { bytes, err: null };
  } catch (err) {
    return { bytes, err: err as Error & { code?: string } };
  }
}

t.test('BodyLimit passes a body up to its limit and fails with BATON_BODY_TOO_LARGE past it', async (t) => {
  const kb = Buffer.alloc(1024);
  t.same(await through(2048, [kb, kb]), { bytes: 2048, err: null }, 'exactly the limit');
  const over = await through(2048, [kb, kb, Buffer.alloc(1)]);
  t.equal(over.err?.code, 'BATON_BODY_TOO_LARGE');
  t.equal(over.bytes, 2048, 'nothing past the limit went through');
  t.same(await through(0, [kb, kb, kb, kb]), { bytes: 4096, err: null }, '0 counts nothing');
});

t.test('Expect: 100-continue is held per request', async (t) => {
  const a = {} as http.IncomingMessage;
  const b = {} as http.IncomingMessage;
  holdContinue(a);
  t.ok(awaitsContinue(a));
  t.notOk(awaitsContinue(b));
});

t.test('the connection budget leaves room under the file descriptor limit', async (t) => {
  const budget = connectionBudget();
  if (budget === null) return t.pass('no limit here');
  t.ok(budget >= 1);
});

t.test('routing paths: path parameters are cut from every segment, a decoded NUL is refused', async (t) => {
  t.equal(routingPath('/admin;jsessionid=1/x'), '/admin/x');
  t.equal(routingPath('/public/..;/admin/'), '/admin/');
  t.equal(routingPath('/a;b;c/d;e'), '/a/d');
  t.equal(routingPath('/public/%2e%2e;x/admin'), '/admin');
  t.equal(routingPath('/x/%00/y'), null);
  t.equal(routingPath('/plain/path'), '/plain/path', 'the fast path is untouched');
});

t.test('request headers: a second Host and any transfer coding but chunked are refused', async (t) => {
  const ctx = { clientAddress: '127.0.0.1', proto: 'http' as const };
  t.throws(() => buildUpstreamHead(['Host', 'a', 'Host', 'b'], ctx), BadRequest);
  for (const te of ['identity, chunked', 'gzip', 'chunked, gzip', 'xchunked', '"chunked"'])
    t.throws(() => buildUpstreamHead(['Host', 'a', 'Transfer-Encoding', te], ctx), BadRequest, te);
  for (const te of ['chunked', 'Chunked', ' chunked ', '\tCHUNKED'])
    t.equal(buildUpstreamHead(['Host', 'a', 'Transfer-Encoding', te], ctx).chunked, true, JSON.stringify(te));
});
