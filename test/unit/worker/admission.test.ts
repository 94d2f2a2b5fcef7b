/** @module Admission: Host validation, header count and size, and the one gate every kind of request passes. */
import type http from 'node:http';
import t from 'tap';
import { DEFAULT_LIMITS } from '../../../lib/config/sections/limits.js';
import { headersExceeded, isValidHost } from '../../../lib/worker/admission.js';

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
