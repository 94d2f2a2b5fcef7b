/** @module Header rewriting: strip lists both ways, validation, forwarding headers, request ids. */
import t from 'tap';
import {
  BadRequest, RESPONSE_STRIP, buildResponseHeaders, buildUpstreamHead, cleanTunnelResponseHeaders, isSaneRequestId,
  nextRequestId, toHeaderObject,
} from '../../../lib/worker/headers.js';
import { displayAddress } from '../../../lib/worker/client-address.js';

const ctx = { clientAddress: '10.0.0.9', proto: 'http' as const };
const names = (flat: readonly string[]) => flat.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
const get = (flat: readonly string[], name: string) => {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === name) out.push(flat[i + 1]!);
  return out;
};

t.test('hop-by-hop request headers and the headers named by Connection are not forwarded', async (t) => {
  const head = buildUpstreamHead([
    'Host', 'example.com:8080',
    'Connection', 'keep-alive, X-Secret',
    'connection', 'Other-Token',
    'X-Secret', 'a',
    'other-token', 'b',
    'Keep-Alive', 'timeout=5',
    'Proxy-Connection', 'keep-alive',
    'Transfer-Encoding', 'chunked',
    'TE', 'gzip',
    'Trailer', 'x',
    'Upgrade', 'websocket',
    'HTTP2-Settings', 'AAA',
    'Expect', '100-continue',
    'Proxy-Authorization', 'Basic x',
    'Accept', 'text/html',
  ], ctx);
  t.strictSame(names(head.headers), ['accept', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via', 'x-request-id']);
  t.equal(head.authority, 'example.com:8080');
  t.equal(head.chunked, true);
  t.strictSame(get(head.headers, 'host'), ['example.com:8080'], 'Host is set explicitly to the client host');
});

t.test('te: trailers is forwarded (gRPC needs it end to end); any other te is not', async (t) => {
  t.strictSame(get(buildUpstreamHead(['Host', 'a', 'TE', 'trailers'], ctx).headers, 'te'), ['trailers']);
  t.strictSame(get(buildUpstreamHead(['Host', 'a', 'te', ' Trailers '], ctx).headers, 'te'), ['trailers']);
  t.strictSame(get(buildUpstreamHead(['Host', 'a', 'TE', 'gzip, trailers'], ctx).headers, 'te'), []);
});

t.test('header names keep their spelling and duplicates survive', async (t) => {
  const head = buildUpstreamHead(['X-Dup', '1', 'x-dup', '2', 'Accept-Language', 'fr'], ctx);
  t.strictSame(head.headers.slice(0, 6), ['X-Dup', '1', 'x-dup', '2', 'Accept-Language', 'fr']);
});

t.test('forwarding headers: X-Forwarded-For appends, Proto and Host are ours, Via appends', async (t) => {
  const head = buildUpstreamHead([
    'Host', 'h.test', 'X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2', 'X-Forwarded-Proto', 'https',
    'X-Forwarded-Host', 'evil.test', 'Via', '1.0 other',
  ], { clientAddress: '::ffff:10.1.2.3', proto: 'https' });
  t.strictSame(get(head.headers, 'x-forwarded-for'), ['1.1.1.1, 2.2.2.2, 10.1.2.3']);
  t.strictSame(get(head.headers, 'x-forwarded-proto'), ['https']);
  t.strictSame(get(head.headers, 'x-forwarded-host'), ['h.test']);
  t.strictSame(get(head.headers, 'via'), ['1.0 other, 1.1 baton']);
});

t.test('a sane client request id is kept, anything else is replaced by a generated one', async (t) => {
  t.equal(buildUpstreamHead(['X-Request-Id', 'abc-123_x.y:z'], ctx).requestId, 'abc-123_x.y:z');
  const replaced = buildUpstreamHead(['X-Request-Id', 'has space'], ctx);
  t.not(replaced.requestId, 'has space');
  t.strictSame(get(replaced.headers, 'x-request-id'), [replaced.requestId]);
  t.notOk(isSaneRequestId('x'.repeat(201)));
  t.notOk(isSaneRequestId(''));
  t.ok(isSaneRequestId('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'));
});

t.test('generated request ids are unique and cheap (prefix + counter)', async (t) => {
  const a = nextRequestId();
  const b = nextRequestId();
  t.not(a, b);
  t.equal(a.split('-')[0], b.split('-')[0], 'same per-process prefix');
  t.ok(isSaneRequestId(a));
});

t.test('an invalid header name or value is a BadRequest, before anything is built', async (t) => {
  t.throws(() => buildUpstreamHead(['X-Bad', 'a\x01b'], ctx), BadRequest);
  t.throws(() => buildUpstreamHead(['X-Bad', 'a\r\nInjected: 1'], ctx), BadRequest);
  t.throws(() => buildUpstreamHead(['Bad Name', 'v'], ctx), BadRequest);
  t.throws(() => buildUpstreamHead(['Host', 'h\x7f'], ctx), BadRequest);
});

t.test('Content-Length must be digits; identical duplicates collapse, different ones are refused', async (t) => {
  t.equal(buildUpstreamHead(['Content-Length', '42'], ctx).contentLength, 42);
  t.strictSame(get(buildUpstreamHead(['Content-Length', '5', 'content-length', '5'], ctx).headers, 'content-length'), ['5']);
  t.throws(() => buildUpstreamHead(['Content-Length', '5', 'Content-Length', '6'], ctx), BadRequest);
  t.throws(() => buildUpstreamHead(['Content-Length', '-1'], ctx), BadRequest);
  t.throws(() => buildUpstreamHead(['Content-Length', '5', 'Transfer-Encoding', 'chunked'], ctx), BadRequest);
  t.equal(buildUpstreamHead([], ctx).contentLength, -1);
});

t.test('HTTP/2 pseudo-headers are dropped, :authority becomes Host, split cookies are joined', async (t) => {
  const head = buildUpstreamHead([
    ':method', 'GET', ':path', '/x', ':scheme', 'https', ':authority', 'h2.test', 'cookie', 'a=1', 'cookie', 'b=2',
  ], ctx);
  t.equal(head.authority, 'h2.test');
  t.strictSame(get(head.headers, 'host'), ['h2.test']);
  t.strictSame(get(head.headers, 'cookie'), ['a=1; b=2']);
  t.notOk(names(head.headers).some((n) => n.startsWith(':')));
});

t.test('an absolute-form authority overrides Host', async (t) => {
  const head = buildUpstreamHead(['Host', 'ignored.test'], { ...ctx, authority: 'real.test' });
  t.strictSame(get(head.headers, 'host'), ['real.test']);
});

t.test('a tunnel keeps Upgrade and asks for Connection: upgrade', async (t) => {
  const head = buildUpstreamHead(['Host', 'h', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'], { ...ctx, tunnel: true });
  t.strictSame(get(head.headers, 'upgrade'), ['websocket']);
  t.strictSame(get(head.headers, 'connection'), ['upgrade']);
  t.strictSame(get(head.headers, 'sec-websocket-key'), ['k']);
});

t.test('response hop-by-hop headers and Connection-named ones are stripped, set-cookie kept, request id echoed', async (t) => {
  const raw = ['Connection', 'keep-alive, X-Internal', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked',
    'X-Internal', '1', 'Proxy-Connection', 'x', 'Trailer', 'y', 'Upgrade', 'z', 'TE', 'trailers',
    'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain'].map((s) => Buffer.from(s, 'latin1'));
  const out = buildResponseHeaders(raw, 'rid-1');
  t.strictSame(out, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain', 'x-request-id', 'rid-1']);
});

t.test('every name of the response strip list is stripped in any letter case, and names of the same lengths are kept', async (t) => {
  const raw: string[] = [];
  const kept: string[] = [];
  for (const name of RESPONSE_STRIP) {
    raw.push(name, 'a', name.toUpperCase(), 'b', name[0]!.toUpperCase() + name.slice(1), 'c');
    // Same length, one letter off: a lookalike is an ordinary header.
    const other = 'q' + name.slice(1);
    raw.push(other, 'd');
    kept.push(other, 'd');
  }
  raw.push('X-REQUEST-ID', 'up');
  kept.push('X-REQUEST-ID', 'up');
  t.strictSame(buildResponseHeaders(raw, 'ours'), kept);
});

t.test('an upstream x-request-id is relayed instead of ours', async (t) => {
  t.strictSame(buildResponseHeaders(['X-Request-Id', 'up'], 'ours'), ['X-Request-Id', 'up']);
});

t.test('latin1 response header bytes round-trip unchanged', async (t) => {
  const v = Buffer.from([0x61, 0xe9, 0xff]);
  const out = buildResponseHeaders([Buffer.from('X-L'), v], 'r');
  t.same(Buffer.from(out[1]!, 'latin1'), v);
});

t.test('tunnel response headers: a 101 keeps the upgrade, a refusal closes', async (t) => {
  const up: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket', 'keep-alive': 'x', 'sec-websocket-accept': 'a' };
  cleanTunnelResponseHeaders(up, true);
  t.strictSame(up, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-accept': 'a' });
  const refused: Record<string, string> = { connection: 'keep-alive, x-int', 'x-int': '1', 'transfer-encoding': 'chunked', 'content-type': 'text/plain' };
  cleanTunnelResponseHeaders(refused, false);
  t.strictSame(refused, { 'content-type': 'text/plain', connection: 'close' });
});

t.test('helpers: IPv4-mapped addresses display as IPv4, flat lists become objects', async (t) => {
  t.equal(displayAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(displayAddress('::1'), '::1');
  t.equal(displayAddress(undefined), 'unknown');
  t.strictSame({ ...toHeaderObject(['A', '1', 'a', '2', 'B', '3']) }, { a: ['1', '2'], b: '3' });
});

t.test('request headers: a second Host and any transfer coding but chunked are refused', async (t) => {
  const ctx = { clientAddress: '127.0.0.1', proto: 'http' as const };
  t.throws(() => buildUpstreamHead(['Host', 'a', 'Host', 'b'], ctx), BadRequest);
  for (const te of ['identity, chunked', 'gzip', 'chunked, gzip', 'xchunked', '"chunked"'])
    t.throws(() => buildUpstreamHead(['Host', 'a', 'Transfer-Encoding', te], ctx), BadRequest, te);
  for (const te of ['chunked', 'Chunked', ' chunked ', '\tCHUNKED'])
    t.equal(buildUpstreamHead(['Host', 'a', 'Transfer-Encoding', te], ctx).chunked, true, JSON.stringify(te));
});
