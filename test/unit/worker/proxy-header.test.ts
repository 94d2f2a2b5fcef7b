/** @module The PROXY protocol header parser (HAProxy's spec, v1 and v2): bytes in, a verdict out. */
import t from 'tap';
import { formatIPv6, parseProxyHeader } from '../../../lib/worker/proxy-header.js';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: command, family/transport byte, address block, then TLVs. */
function v2(cmd: number, fam: number, addresses: Buffer, tlvs = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addresses.length + tlvs.length);
  return Buffer.concat([SIG, Buffer.from([0x20 | cmd, fam]), len, addresses, tlvs]);
}

function ipv4Block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

t.test('v1: TCP4 and TCP6 headers name the client; the bytes after the header are not part of it', async (t) => {
  const text = 'PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n';
  t.strictSame(parseProxyHeader(Buffer.from(text)), { kind: 'header', length: 44, peer: { address: '203.0.113.7', port: 51000, family: 'IPv4' } });
  t.strictSame(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n')), { kind: 'header', length: 46, peer: { address: '2001:db8::7', port: 51000, family: 'IPv6' } });
  t.strictSame(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n')), { kind: 'header', length: 35, peer: null }, 'UNKNOWN keeps the peer');
});

t.test('v1: a header cut anywhere is partial; one without CRLF within 107 bytes is invalid', async (t) => {
  const text = 'PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n';
  for (let n = 1; n < text.length; n++) t.strictSame(parseProxyHeader(Buffer.from(text.slice(0, n))), { kind: 'partial' }, `${n} bytes`);
  t.match(parseProxyHeader(Buffer.from(`PROXY TCP4 ${'1'.repeat(110)}`)), { kind: 'invalid', reason: /longer than 107/ });
});

t.test('v1: malformed headers are invalid', async (t) => {
  for (const bad of [
    'PROXY TCP4 203.0.113.7 192.0.2.1 51000\r\n',
    'PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n',
    'PROXY TCP6 203.0.113.7 192.0.2.1 1 2\r\n',
    'PROXY TCP4 203.0.113.7 192.0.2.1 70000 443\r\n',
    'PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n',
    'PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n',
    'PROXY  TCP4 203.0.113.7 192.0.2.1 1 2\r\n',
    'PROXY TCP4 203.0.113.07 192.0.2.1 1 2\r\n',
  ]) t.match(parseProxyHeader(Buffer.from(bad)), { kind: 'invalid' }, JSON.stringify(bad));
});

t.test('a connection that starts with anything else has no header', async (t) => {
  for (const other of ['GET / HTTP/1.1\r\n', 'PRI * HTTP/2.0', '\x16\x03\x01', 'proxy TCP4', 'PROXX']) {
    t.match(parseProxyHeader(Buffer.from(other, 'latin1')), { kind: 'invalid', reason: 'no PROXY protocol header' }, JSON.stringify(other));
  }
});

t.test('v2: PROXY over IPv4 and IPv6, with TLVs skipped', async (t) => {
  const tlvs = Buffer.from([0x03, 0x00, 0x04, 1, 2, 3, 4, 0x05, 0x00, 0x02, 0xaa, 0xbb]);
  const four = v2(1, 0x11, ipv4Block([203, 0, 113, 7], [192, 0, 2, 1], 51000, 443), tlvs);
  t.strictSame(parseProxyHeader(Buffer.concat([four, Buffer.from('GET /')])), { kind: 'header', length: four.length, peer: { address: '203.0.113.7', port: 51000, family: 'IPv4' } });
  const six = Buffer.alloc(36);
  Buffer.from('20010db8000000000000000000000007', 'hex').copy(six, 0);
  six.writeUInt16BE(40000, 32);
  t.strictSame(parseProxyHeader(v2(1, 0x21, six)), { kind: 'header', length: 52, peer: { address: '2001:db8::7', port: 40000, family: 'IPv6' } });
});

t.test('v2: LOCAL (a balancer\'s health check) and UNSPEC keep the peer; AF_UNIX names a unix client', async (t) => {
  t.strictSame(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16, peer: null });
  t.strictSame(parseProxyHeader(v2(0, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))), { kind: 'header', length: 28, peer: null });
  t.strictSame(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16, peer: null });
  t.match(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216))), { kind: 'header', length: 232, peer: { address: 'unix:' } });
});

t.test('v2: cut anywhere it is partial; bad versions, commands, families and lengths are invalid', async (t) => {
  const whole = v2(1, 0x11, ipv4Block([203, 0, 113, 7], [192, 0, 2, 1], 1, 2));
  for (let n = 1; n < whole.length; n++) t.strictSame(parseProxyHeader(whole.subarray(0, n)), { kind: 'partial' }, `${n} bytes`);
  const bad = (b: Buffer, at: number, v: number) => { const c = Buffer.from(b); c[at] = v; return c; };
  t.match(parseProxyHeader(bad(whole, 12, 0x11)), { kind: 'invalid', reason: /version 1/ });
  t.match(parseProxyHeader(bad(whole, 12, 0x22)), { kind: 'invalid', reason: /command 2/ });
  t.match(parseProxyHeader(bad(whole, 13, 0x41)), { kind: 'invalid', reason: /address family 4/ });
  t.match(parseProxyHeader(bad(whole, 13, 0x13)), { kind: 'invalid', reason: /transport 3/ });
  t.match(parseProxyHeader(v2(1, 0x11, Buffer.alloc(8))), { kind: 'invalid', reason: /short IPv4/ });
  t.match(parseProxyHeader(v2(1, 0x21, Buffer.alloc(12))), { kind: 'invalid', reason: /short IPv6/ });
  const huge = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  t.match(parseProxyHeader(huge), { kind: 'invalid', reason: /over/ }, 'a length past the bound is refused before its bytes arrive');
});

t.test('IPv6 addresses are written as Node writes a peer address', async (t) => {
  const hex = (h: string) => Buffer.from(h, 'hex');
  t.equal(formatIPv6(hex('00000000000000000000000000000001'), 0), '::1');
  t.equal(formatIPv6(hex('00000000000000000000000000000000'), 0), '::');
  t.equal(formatIPv6(hex('20010db8000100000000000000000001'), 0), '2001:db8:1::1');
  t.equal(formatIPv6(hex('20010db8000000010000000000000001'), 0), '2001:db8:0:1::1', 'the longest run of zeros is compressed');
  t.equal(formatIPv6(hex('fe800000000000000000000000000000'), 0), 'fe80::');
  t.equal(formatIPv6(hex('00000000000000000000ffffcb007107'), 0), '::ffff:203.0.113.7', 'IPv4-mapped, dotted');
  t.equal(formatIPv6(hex('20010db8000100020003000400050006'), 0), '2001:db8:1:2:3:4:5:6');
});
