/** @module Host name patterns for routes and SNI. */
import t from 'tap';
import { parseHostPattern } from '../../../lib/util/host-pattern.js';

t.test('exact names and *.suffix wildcards are accepted and lower-cased', async (t) => {
  for (const [input, out] of [['example.com', 'example.com'], ['API.Example.COM', 'api.example.com'], ['*.Example.com', '*.example.com'], ['localhost', 'localhost'], ['127.0.0.1', '127.0.0.1'], ['a_b-c.d', 'a_b-c.d']]) {
    t.strictSame(parseHostPattern(input!), { ok: true, value: out }, input);
  }
});

t.test('a port is an error that says so', async (t) => {
  t.strictSame(parseHostPattern('example.com:8080'), { ok: false, message: 'expected a host name without a port, got "example.com:8080"' });
});

t.test('wildcards anywhere but the whole first label, empty labels and odd characters are errors', async (t) => {
  for (const input of ['*', '*example.com', 'a.*.com', 'example.*', 'example..com', '.example.com', 'example.com.', '-a.com', 'a b.com', '', 'ex/ample.com']) {
    t.match(parseHostPattern(input), { ok: false, message: /^expected a host name like example.com or \*\.example.com, got / }, JSON.stringify(input));
  }
});
