/** @module The HTTP/2 codes a worker sends without loading node:http2 are node:http2's own. */
import http2 from 'node:http2';
import t from 'tap';
import * as codes from '../../../lib/worker/h2-codes.js';

t.test("each HTTP/2 code in h2-codes.ts has node:http2's value, and http2Module() is node:http2", async (t) => {
  const names = Object.keys(codes).filter((k) => k.startsWith('NGHTTP2_'));
  t.ok(names.length >= 6, 'the codes are there');
  for (const name of names) t.equal((codes as Record<string, unknown>)[name], (http2.constants as unknown as Record<string, unknown>)[name], name);
  t.equal(codes.http2Module(), http2);
});
