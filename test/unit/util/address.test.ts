/** @module Listen address parsing and canonical keys. */
import t from 'tap';
import { parseAddress } from '../../../lib/util/address.js';

const ok = (key: string, host: string, port: number, family: 4 | 6) => ({ ok: true, value: { key, host, port, family } });

t.test('IPv4 addresses keep their host and port', async (t) => {
  t.strictSame(parseAddress('127.0.0.1:80'), ok('127.0.0.1:80', '127.0.0.1', 80, 4));
  t.strictSame(parseAddress('0.0.0.0:8080'), ok('0.0.0.0:8080', '0.0.0.0', 8080, 4));
});

t.test('IPv6 addresses are bracketed in the key and compressed to their canonical form', async (t) => {
  t.strictSame(parseAddress('[::]:443'), ok('[::]:443', '::', 443, 6));
  t.strictSame(parseAddress('[0:0:0:0:0:0:0:1]:0'), ok('[::1]:0', '::1', 0, 6));
  t.strictSame(parseAddress('[2001:DB8::0:1]:80'), ok('[2001:db8::1]:80', '2001:db8::1', 80, 6));
});

t.test('localhost, * and a bare port need no DNS', async (t) => {
  t.strictSame(parseAddress('localhost:80'), ok('127.0.0.1:80', '127.0.0.1', 80, 4));
  t.strictSame(parseAddress('*:80'), ok('0.0.0.0:80', '0.0.0.0', 80, 4));
  t.strictSame(parseAddress('8080'), ok('0.0.0.0:8080', '0.0.0.0', 8080, 4));
  t.strictSame(parseAddress(8080), ok('0.0.0.0:8080', '0.0.0.0', 8080, 4));
});

t.test('port 0 is allowed, so the OS can pick one', async (t) => {
  t.strictSame(parseAddress('127.0.0.1:0'), ok('127.0.0.1:0', '127.0.0.1', 0, 4));
});

t.test('the same socket written differently has the same key', async (t) => {
  const keys = ['0.0.0.0:80', '*:80', '80', 80].map((a) => parseAddress(a)).map((r) => (r.ok ? r.value.key : r.message));
  t.strictSame(new Set(keys), new Set(['0.0.0.0:80']));
});

t.test('ports outside 0..65535 or not numeric are errors', async (t) => {
  for (const input of ['127.0.0.1:65536', '[::1]:99999', '127.0.0.1:http', '127.0.0.1:', '70000', '127.0.0.1:-1']) {
    t.match(parseAddress(input), { ok: false, message: /^expected a port 0\.\.65535, got / }, input);
  }
  t.strictSame(parseAddress('127.0.0.1:65535'), ok('127.0.0.1:65535', '127.0.0.1', 65535, 4));
});

t.test('host names other than localhost are errors, since nothing is resolved at load time', async (t) => {
  t.strictSame(parseAddress('example.com:80'), { ok: false, message: 'expected a numeric IP address, localhost or *, got "example.com:80"' });
  t.match(parseAddress('127.0.0.01:80'), { ok: false });
  t.match(parseAddress('256.0.0.1:80'), { ok: false });
});

t.test('an IPv6 address without brackets is an error that says so', async (t) => {
  for (const input of ['::1:80', '::', '2001:db8::1']) {
    t.strictSame(parseAddress(input), { ok: false, message: `expected brackets around an IPv6 address, like [::1]:80, got ${JSON.stringify(input)}` }, input);
  }
});

t.test('malformed addresses are errors', async (t) => {
  for (const input of ['', '127.0.0.1', '[::1]', '[127.0.0.1]:80', '[fe80::1%eth0]:80', 'a:b:c', '[::1]:80:80']) {
    t.match(parseAddress(input), { ok: false, message: /^expected / }, JSON.stringify(input));
  }
});

t.test('a unix socket path is keyed by its absolute path, resolved against the directory given', async (t) => {
  t.strictSame(parseAddress('unix:/run/baton/http.sock'), { ok: true, value: { key: 'unix:/run/baton/http.sock', host: '/run/baton/http.sock', port: -1, family: 'unix' } });
  t.strictSame(parseAddress('unix:run/http.sock', '/etc/baton'), { ok: true, value: { key: 'unix:/etc/baton/run/http.sock', host: '/etc/baton/run/http.sock', port: -1, family: 'unix' } });
  t.match(parseAddress('unix:/a/../b.sock'), { ok: true, value: { key: 'unix:/b.sock' } }, 'one file, one key');
});

t.test('unix socket paths the kernel cannot bind are errors', async (t) => {
  for (const input of ['unix:', 'unix:@abstract', 'unix:/run/dir/', `unix:/${'x'.repeat(110)}.sock`]) {
    t.match(parseAddress(input), { ok: false, message: /^expected a socket / }, input);
  }
  t.match(parseAddress(`unix:/${'x'.repeat(101)}.sock`), { ok: true }, '107 bytes fit');
});
