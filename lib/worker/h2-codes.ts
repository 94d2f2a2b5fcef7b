/**
 * @module The HTTP/2 codes a worker sends, as numbers (RFC 9113 §7 error codes, §6.1 the END_STREAM flag): the
 * values of node:http2's `constants`, which a module would have to load node:http2 (with node:tls and node:crypto)
 * to read at its top, and a worker whose config has no HTTP/2 does not load it before it is ready
 * (test/unit/worker/h2-codes.test.ts checks them against Node's).
 */
export const NGHTTP2_NO_ERROR = 0x0;
export const NGHTTP2_INTERNAL_ERROR = 0x2;
export const NGHTTP2_REFUSED_STREAM = 0x7;
export const NGHTTP2_CANCEL = 0x8;
export const NGHTTP2_ENHANCE_YOUR_CALM = 0xb;
export const NGHTTP2_FLAG_END_STREAM = 0x1;

/** node:http2, loaded by the first caller: a listener with h2c or TLS, an HTTP/2 upstream. */
export function http2Module(): typeof import('node:http2') {
  return process.getBuiltinModule('node:http2');
}
