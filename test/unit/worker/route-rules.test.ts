/**
 * @module The per-route rules as pure functions: the client address behind trusted proxies, allow/deny in the
 * order written, path rewriting without a way out of the prefix, header rules, and the compression decision.
 */
import t from 'tap';
import { AccessList } from '../../../lib/worker/access.js';
import { TrustedProxies } from '../../../lib/worker/client-address.js';
import { Compression, acceptedQ } from '../../../lib/worker/compress.js';
import { applyHeaderRules, compileHeaderRules } from '../../../lib/worker/header-rules.js';
import { buildUpstreamHead } from '../../../lib/worker/headers.js';
import { compilePathRules, rewriteTarget } from '../../../lib/worker/path-rules.js';
import { routingPath } from '../../../lib/worker/router.js';
import type { VariableSource } from '../../../lib/util/template.js';

const trusted = new TrustedProxies(['10.0.0.0/8', '2001:db8::/32']);
const xffOf = (head: { headers: string[] }) => head.headers[head.headers.indexOf('x-forwarded-for') + 1];

t.test('from a trusted peer, the client is the rightmost untrusted X-Forwarded-For entry (nginx real_ip_recursive)', async (t) => {
  const resolve = (xff: string) => (trusted.resolve(xff) ? [trusted.client, trusted.forwarded] : null);
  t.strictSame(resolve('203.0.113.9'), ['203.0.113.9', '203.0.113.9']);
  t.strictSame(resolve('198.51.100.1, 203.0.113.9, 10.0.0.2'), ['203.0.113.9', '198.51.100.1, 203.0.113.9'], 'trusted hops to its right are skipped');
  t.strictSame(resolve('10.0.0.3,10.0.0.2'), ['10.0.0.3', '10.0.0.3'], 'all trusted: the leftmost');
  t.strictSame(resolve(' 203.0.113.9:4711 , [2001:db8::5]:80'), ['203.0.113.9', ' 203.0.113.9:4711'], 'ports and brackets are read');
  t.strictSame(resolve('2001:DB9::1'), ['2001:db9::1', '2001:DB9::1'], 'IPv6 is printed canonically');
  t.strictSame(resolve('::ffff:203.0.113.9'), ['203.0.113.9', '::ffff:203.0.113.9'], 'IPv4-mapped is IPv4');
  t.equal(resolve('203.0.113.9, garbage, 10.0.0.2'), null, 'an entry that is not an address: the header is not believed');
  t.equal(resolve('unknown'), null);
  t.equal(resolve(''), null);
  t.equal(resolve('203.0.113.9,'), null, 'an empty entry');
  t.ok(trusted.trusts('10.9.9.9'));
  t.ok(trusted.trusts('::ffff:10.9.9.9'));
  t.notOk(trusted.trusts('127.0.0.1'));
  t.notOk(trusted.trusts('unknown'));
});

t.test('the upstream X-Forwarded-For ends with the client: trimmed from a trusted peer, appended from any other', async (t) => {
  const build = (peer: string, xff: string | null) => buildUpstreamHead(xff === null ? ['Host', 'x'] : ['Host', 'x', 'X-Forwarded-For', xff], { clientAddress: peer, proto: 'http', trusted });
  const a = build('10.0.0.1', '203.0.113.9, 10.0.0.7');
  t.equal(a.client, '203.0.113.9');
  t.equal(xffOf(a), '203.0.113.9');
  const b = build('192.0.2.1', '203.0.113.9');
  t.equal(b.client, '192.0.2.1', 'an untrusted peer: the header is not believed');
  t.equal(xffOf(b), '203.0.113.9, 192.0.2.1');
  const c = build('10.0.0.1', null);
  t.equal(c.client, '10.0.0.1', 'a trusted peer without the header is the client');
  t.equal(xffOf(c), '10.0.0.1');
  const d = build('::ffff:10.0.0.1', 'bogus');
  t.equal(d.client, '10.0.0.1', 'an unbelieved header leaves the peer');
  t.equal(xffOf(d), 'bogus, 10.0.0.1');
  const e = buildUpstreamHead(['Host', 'x', 'X-Forwarded-For', '203.0.113.9'], { clientAddress: '10.0.0.1', proto: 'http' });
  t.equal(e.client, '10.0.0.1', 'without trusted_proxies nothing is believed');
});

t.test('allow/deny: the first matching rule decides; else deny when any allow is given, allow otherwise', async (t) => {
  const rules = (...r: [boolean, string][]) => new AccessList(r.map(([allow, cidr]) => ({ allow, cidr })));
  const onlyDeny = rules([false, '10.0.0.0/8']);
  t.notOk(onlyDeny.allows('10.1.1.1'));
  t.ok(onlyDeny.allows('192.0.2.1'), 'only deny rules: the rest is allowed');
  const onlyAllow = rules([true, '10.0.0.0/8'], [true, '::1']);
  t.ok(onlyAllow.allows('10.1.1.1'));
  t.ok(onlyAllow.allows('::ffff:10.1.1.1'), 'IPv4-mapped clients match IPv4 rules');
  t.ok(onlyAllow.allows('::1'));
  t.notOk(onlyAllow.allows('192.0.2.1'), 'any allow rule: the rest is denied');
  t.notOk(onlyAllow.allows('unknown'));
  const nginx = rules([false, '10.1.2.3'], [true, '10.0.0.0/8'], [false, '0.0.0.0/0'], [false, '::/0']);
  t.notOk(nginx.allows('10.1.2.3'), 'deny first, as written');
  t.ok(nginx.allows('10.1.2.4'));
  t.notOk(nginx.allows('2001:db8::1'));
});

t.test('path rules rewrite the path routing saw, never a way out of the prefix', async (t) => {
  const rewrite = (routePath: string, strip: boolean, add: string, target: string) => {
    const rules = compilePathRules(routePath, strip, add)!;
    const rpath = routingPath(target)!;
    t.ok(rpath.startsWith(routePath), `${target} is routed by ${routePath}`);
    return rewriteTarget(rules, target, rpath);
  };
  t.equal(compilePathRules('/api/', false, ''), null, 'no rules: nothing to do');
  t.equal(rewrite('/api/', true, '', '/api/users?id=1'), '/users?id=1');
  t.equal(rewrite('/api/', true, '', '/api/'), '/', 'a leading slash is kept');
  t.equal(rewrite('/api', true, '', '/api'), '/');
  t.equal(rewrite('/api', true, '', '/api/x'), '/x');
  t.equal(rewrite('/api/', true, '/v2', '/api/x?q'), '/v2/x?q');
  t.equal(rewrite('/api/', true, '/v2/', '/api/x'), '/v2/x');
  t.equal(rewrite('/api/', false, '/v2', '/api/x'), '/v2/api/x');
  t.equal(rewrite('/api/', true, '', "/api/x,y:z@w$!*'()+=&~"), "/x,y:z@w$!*'()+=&~", 'a path needing no normalization is sent as received');
  t.equal(rewrite('/api/', true, '', '/api/a%20b?x=%2e%2e'), '/a%20b?x=%2e%2e', 'a decoded path is encoded again; the query stays as received');
  t.equal(rewrite('/api/', true, '', '/api/x/%2e%2e/%2e%2e/api/y'), '/y', 'dot segments resolved before stripping');
  t.equal(rewrite('/api/', true, '/v2', '/api/a/../../api/b'), '/v2/b', 'cannot climb out of the added prefix');
  t.equal(rewrite('/api/', false, '/v2', '/api/a/../../api/b'), '/v2/api/b');
  t.equal(rewrite('/api/', true, '', '/api/a%3Fb%23c%25d'), '/a%3Fb%23c%25d', 'decoded ?, # and % are encoded again');
  t.equal(rewrite('/api/', true, '', '/%61pi/caf%C3%A9'), '/caf%C3%A9', 'a percent-encoded prefix is stripped too');
  t.equal(rewrite('/api/', true, '', '/api;x=1/y'), '/y', 'path parameters are gone as for routing');
  t.equal(rewrite('/api/', true, '', '/api//y'), '/y');
});

t.test('header rules: remove, then set (replacing), then add; variables rendered; Host by upstream_host', async (t) => {
  const src: VariableSource = { client: '203.0.113.9', hostname: 'example.com', scheme: 'https', requestId: 'r-1', uri: '/p?q=1' };
  const rules = compileHeaderRules({
    set: [['X-Client', '$client_ip'], ['X-Keep', 'fixed']],
    add: [['X-Tag', 'a'], ['X-Tag', '$scheme://$host$request_uri']],
    remove: ['x-debug'],
  }, { kind: 'fixed', host: 'app.internal' })!;
  const list = ['host', 'example.com', 'X-Debug', '1', 'x-keep', 'old', 'X-Tag', 'from-client', 'accept', '*/*'];
  applyHeaderRules(list, rules, src);
  t.strictSame(list, [
    'X-Tag', 'from-client', 'accept', '*/*',
    'X-Client', '203.0.113.9', 'X-Keep', 'fixed', 'X-Tag', 'a', 'X-Tag', 'https://example.com/p?q=1', 'host', 'app.internal',
  ]);
  const target = compileHeaderRules(null, { kind: 'target' })!;
  const l2 = ['host', 'example.com', 'a', 'b'];
  applyHeaderRules(l2, target, src);
  t.strictSame(l2, ['a', 'b'], 'upstream_host: target drops Host (undici then sends the target\'s)');
  t.equal(compileHeaderRules(null), null, 'no rules: nothing compiled');
});

t.test('compression: the coding the client prefers, only for responses that can take one', async (t) => {
  const c = new Compression({ algorithms: ['br', 'gzip'], types: ['text/*', 'application/json', 'application/*+json'], minSize: 100 });
  const req = (ae: string | null, method = 'GET', minor = 1) => ({
    method, httpVersionMajor: 1, httpVersionMinor: minor, rawHeaders: ae === null ? ['Host', 'x'] : ['Host', 'x', 'Accept-Encoding', ae],
  });
  const decide = (ae: string | null, status: number, headers: string[], method = 'GET', minor = 1) => {
    const list = headers.slice();
    return { coding: c.decide(req(ae, method, minor), status, list), list };
  };
  const text = ['Content-Type', 'text/html; charset=utf-8', 'Content-Length', '5000', 'ETag', '"v1"', 'Accept-Ranges', 'bytes'];
  const br = decide('gzip, deflate, br', 200, text);
  t.equal(br.coding, 'br');
  t.strictSame(br.list, ['Content-Type', 'text/html; charset=utf-8', 'ETag', 'W/"v1"', 'vary', 'Accept-Encoding', 'content-encoding', 'br'],
    'Content-Length and Accept-Ranges removed, ETag weakened, Vary and Content-Encoding added');
  t.equal(decide('gzip;q=1, br;q=0.5', 200, text).coding, 'gzip', 'q-values decide');
  t.equal(decide('br;q=0, gzip', 200, text).coding, 'gzip');
  t.equal(decide('*', 200, text).coding, 'br', '* accepts any, in config order');
  t.equal(decide('*;q=0, identity', 200, text).coding, null);
  t.equal(decide('GZIP', 200, text).coding, 'gzip', 'case-insensitive');
  const none = decide(null, 200, text);
  t.equal(none.coding, null, 'no Accept-Encoding: identity');
  t.strictSame(none.list, [...text, 'vary', 'Accept-Encoding'], 'but Vary says the response could differ');
  t.equal(decide('gzip', 200, text, 'HEAD').coding, null, 'never HEAD');
  t.equal(decide('gzip', 200, text, 'GET', 0).coding, null, 'never HTTP/1.0');
  for (const status of [101, 204, 206, 304]) t.equal(decide('gzip', status, text).coding, null, `never ${status}`);
  t.equal(decide('gzip', 200, [...text, 'Content-Range', 'bytes 0-1/2']).coding, null, 'never a range');
  t.equal(decide('gzip', 200, [...text, 'Cache-Control', 'public, no-transform']).coding, null, 'never no-transform');
  t.equal(decide('gzip', 200, [...text, 'Content-Encoding', 'gzip']).coding, null, 'never twice');
  t.equal(decide('gzip', 200, ['Content-Type', 'image/png']).coding, null, 'types not listed are not');
  t.equal(decide('gzip', 200, ['Content-Type', 'text/plain', 'Content-Length', '99']).coding, null, 'under min_size is not');
  t.equal(decide('gzip', 200, ['Content-Type', 'text/event-stream']).coding, 'gzip', 'unknown size is');
  t.equal(decide('gzip', 200, ['Content-Type', 'application/problem+json']).coding, 'gzip', '+json suffix pattern');
  t.equal(decide('gzip', 404, ['Content-Type', 'application/json']).coding, 'gzip', 'any status with a body');
  t.equal(decide('gzip', 200, ['content-type', 'text/plain']).coding, 'gzip', 'lower-case names');
  t.equal(decide('gzip', 200, ['Content-Type', 'text/plain', 'ETag', 'W/"x"']).list[3], 'W/"x"', 'a weak ETag stays as it is');
  t.strictSame(decide('gzip', 200, ['Content-Type', 'text/plain', 'Vary', 'Origin']).list.slice(2, 4), ['Vary', 'Origin, Accept-Encoding'], 'Vary is extended');
  t.strictSame(decide('gzip', 200, ['Content-Type', 'text/plain', 'Vary', 'accept-encoding']).list.slice(2, 4), ['Vary', 'accept-encoding'], 'and not twice');
  t.equal(acceptedQ('gzip;q=0.3, *;q=0.5', 'br'), 0.5);
  t.equal(acceptedQ('gzip ; q=0.3', 'gzip'), 0.3);
  t.equal(acceptedQ('x-gzip', 'gzip'), 0);
});
