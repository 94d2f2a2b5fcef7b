/** @module Addresses and CIDR blocks: parsing (IPv4, IPv6, IPv4-mapped), matching, canonical text. */
import t from 'tap';
import { covers, formatBlock, formatIp, inBlock, parseBlock, parseIp, type Block } from '../../../lib/util/cidr.js';

const words = new Uint32Array(4);
const block = (text: string): Block => {
  const b = parseBlock(text);
  if (!b.ok) throw new Error(b.message);
  return b.value;
};
const contains = (cidr: string, address: string): boolean => {
  const family = parseIp(address, words);
  if (family === 0) throw new Error(`not an address: ${address}`);
  return inBlock(block(cidr), family, words);
};

t.test('IPv4 and IPv6 addresses parse, and anything else is refused', async (t) => {
  for (const ok of ['0.0.0.0', '255.255.255.255', '10.0.0.1', '::', '::1', '1::', '2001:db8::8:800:200c:417a', 'FE80::1', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4', '64:ff9b::192.0.2.33']) {
    t.not(parseIp(ok, words), 0, ok);
  }
  for (const bad of ['', '1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d', ':1', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', '1.2.3.4:80', '[::1]', 'unknown', '1:2:3:4:5:6:7']) {
    t.equal(parseIp(bad, words), 0, JSON.stringify(bad));
  }
});

t.test('an IPv4-mapped IPv6 address is the IPv4 address it carries', async (t) => {
  t.equal(parseIp('::ffff:10.1.2.3', words), 4);
  t.equal(formatIp(4, words), '10.1.2.3');
  t.equal(parseIp('::FFFF:a01:203', words), 4, 'hex form too');
  t.equal(formatIp(4, words), '10.1.2.3');
});

t.test('blocks match the addresses under their prefix, of their own family only', async (t) => {
  t.ok(contains('10.0.0.0/8', '10.255.0.1'));
  t.notOk(contains('10.0.0.0/8', '11.0.0.1'));
  t.ok(contains('10.0.0.0/8', '::ffff:10.9.9.9'), 'an IPv4-mapped client matches an IPv4 block');
  t.ok(contains('::ffff:10.0.0.0/104', '10.9.9.9'), 'an IPv4-mapped block is an IPv4 block');
  t.ok(contains('0.0.0.0/0', '1.2.3.4'));
  t.notOk(contains('0.0.0.0/0', '::1'));
  t.ok(contains('::/0', '2001:db8::1'));
  t.ok(contains('2001:db8::/32', '2001:db8:ffff::1'));
  t.notOk(contains('2001:db8::/32', '2001:db9::1'));
  t.ok(contains('2001:db8::/33', '2001:db8:7fff::'));
  t.notOk(contains('2001:db8::/33', '2001:db8:8000::'));
  t.ok(contains('192.168.1.7', '192.168.1.7'), 'an address is a block of one');
  t.notOk(contains('192.168.1.7', '192.168.1.8'));
  t.ok(contains('::1', '::1'));
});

t.test('config blocks are refused with a reason: host bits set, prefix too long, not an address', async (t) => {
  t.match(parseBlock('10.0.0.1/8'), { ok: false, message: /host bits set: the block is 10\.0\.0\.0\/8/ });
  t.match(parseBlock('10.0.0.0/33'), { ok: false, message: /at most 32 bits/ });
  t.match(parseBlock('::/129'), { ok: false, message: /at most 128 bits/ });
  t.match(parseBlock('::ffff:10.0.0.0/90'), { ok: false, message: /96 to 128 bits/ });
  t.match(parseBlock('10.0.0.0/x'), { ok: false });
  t.match(parseBlock('example.com'), { ok: false });
});

t.test('blocks print canonically (RFC 5952) and know which contains which', async (t) => {
  t.equal(formatBlock(block('2001:DB8:0:0:0:0:0:0/32')), '2001:db8::/32');
  t.equal(formatBlock(block('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'the first longest zero run is shortened');
  t.equal(formatBlock(block('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1', 'a single zero group is not');
  t.equal(formatBlock(block('::')), '::');
  t.equal(formatBlock(block('0.0.0.0/0')), '0.0.0.0/0');
  t.equal(formatBlock(block('::ffff:192.168.0.0/112')), '192.168.0.0/16');
  t.ok(covers(block('10.0.0.0/8'), block('10.1.0.0/16')));
  t.notOk(covers(block('10.1.0.0/16'), block('10.0.0.0/8')));
  t.notOk(covers(block('0.0.0.0/0'), block('::1')));
});
