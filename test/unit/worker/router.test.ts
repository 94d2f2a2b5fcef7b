/** @module Route selection: host precedence, longest path prefix, fallbacks, host and path normalization. */
import t from 'tap';
import { compileRouter, normalizeHost, routingPath, splitAbsoluteTarget } from '../../../lib/worker/router.js';
import { route } from './config-fixture.js';

const routes = [
  route('/', { upstream: 'default' }),
  route('/healthz', { return: { status: 200 } }),
  route('/v1/', { host: 'api.example.com', upstream: 'api-v1' }),
  route('/v1/admin/', { host: 'api.example.com', upstream: 'api-admin' }),
  route('/', { host: '*.example.com', upstream: 'wild' }),
  route('/deep/', { host: '*.b.example.com', upstream: 'wild-b' }),
  route('/', { host: 'shop.example.com', upstream: 'shop' }),
];
const router = compileRouter(routes);
const up = (host: string, path: string) => {
  const hit = router.match(host, path);
  return hit === null ? null : hit.route.upstream ?? `return ${hit.route.return?.status}`;
};

t.test('an exact host wins over a wildcard and over host-less routes', async (t) => {
  t.equal(up('shop.example.com', '/cart'), 'shop');
  t.equal(up('api.example.com', '/v1/users'), 'api-v1');
});

t.test('within a host the longest path prefix wins', async (t) => {
  t.equal(up('api.example.com', '/v1/admin/x'), 'api-admin');
  t.equal(up('api.example.com', '/v1/adminx'), 'api-v1');
});

t.test('a host group without a matching path falls back to the next less specific hosts', async (t) => {
  t.equal(up('api.example.com', '/other'), 'wild', 'exact api.example.com has no /other: *.example.com serves it');
  t.equal(up('unknown.org', '/healthz'), 'return 200');
  t.equal(up('unknown.org', '/anything'), 'default');
});

t.test('a wildcard matches one or more labels but not the bare domain', async (t) => {
  t.equal(up('a.example.com', '/'), 'wild');
  t.equal(up('a.b.example.com', '/'), 'wild');
  t.equal(up('example.com', '/'), 'default');
});

t.test('the longest matching wildcard suffix is tried first', async (t) => {
  t.equal(up('x.b.example.com', '/deep/1'), 'wild-b');
  t.equal(up('x.b.example.com', '/shallow'), 'wild', 'its paths do not match: the shorter wildcard gets it');
});

t.test('no matching route gives null', async (t) => {
  const r = compileRouter([route('/api/', { host: 'a.test', upstream: 'x' })]);
  t.equal(r.match('a.test', '/'), null);
  t.equal(r.match('b.test', '/api/'), null);
});

t.test('equal routes keep config order: the first written wins', async (t) => {
  const r = compileRouter([route('/a', { upstream: 'first' }), route('/a', { upstream: 'second' })]);
  t.equal(r.match('h', '/a')?.route.upstream, 'first');
  t.equal(r.match('h', '/a')?.label, '*/a');
});

t.test('configured hosts are matched case-insensitively and without a trailing dot', async (t) => {
  const r = compileRouter([route('/', { host: 'Mixed.Example.COM', upstream: 'm' }), route('/', { host: '[::1]', upstream: 'v6' })]);
  t.equal(r.match(normalizeHost('mixed.example.com.'), '/')?.route.upstream, 'm');
  t.equal(r.match(normalizeHost('[::1]:8080'), '/')?.route.upstream, 'v6');
});

t.test('a Host header is lower-cased and loses its port, IPv6 brackets and trailing dot', async (t) => {
  t.equal(normalizeHost('Example.COM:8080'), 'example.com');
  t.equal(normalizeHost('example.com.'), 'example.com');
  t.equal(normalizeHost('[::1]:8080'), '::1');
  t.equal(normalizeHost('[2001:DB8::1]'), '2001:db8::1');
  t.equal(normalizeHost('127.0.0.1:80'), '127.0.0.1');
  t.equal(normalizeHost(''), '');
});

t.test('the routing path drops the query and normalizes disguised paths', async (t) => {
  t.equal(routingPath('/a/b?x=/../y'), '/a/b');
  t.equal(routingPath('/public/../admin/x'), '/admin/x');
  t.equal(routingPath('/public/%2e%2e/admin'), '/admin');
  t.equal(routingPath('/a//b/./c/'), '/a/b/c/');
  t.equal(routingPath('/../../etc'), '/etc', 'never climbs above the root');
  t.equal(routingPath('/a/..'), '/');
  t.equal(routingPath('/%zz'), null, 'an undecodable path');
  const r = compileRouter([route('/public/', { upstream: 'public' }), route('/admin/', { return: { status: 403 } })]);
  t.equal(r.match('h', routingPath('/public/../admin/secret')!)?.route.return?.status, 403);
});

t.test('an absolute-form target splits into authority and origin-form path', async (t) => {
  t.strictSame(splitAbsoluteTarget('http://Example.com:81/a?b'), { authority: 'Example.com:81', path: '/a?b' });
  t.strictSame(splitAbsoluteTarget('https://h'), { authority: 'h', path: '/' });
  t.strictSame(splitAbsoluteTarget('http://h?q=1'), { authority: 'h', path: '/?q=1' });
  t.equal(splitAbsoluteTarget('*'), null);
  t.equal(splitAbsoluteTarget('http://user@h/'), null);
  t.equal(splitAbsoluteTarget('ftp://h/'), null);
});

t.test('routing paths: path parameters are cut from every segment, a decoded NUL is refused', async (t) => {
  t.equal(routingPath('/admin;jsessionid=1/x'), '/admin/x');
  t.equal(routingPath('/public/..;/admin/'), '/admin/');
  t.equal(routingPath('/a;b;c/d;e'), '/a/d');
  t.equal(routingPath('/public/%2e%2e;x/admin'), '/admin');
  t.equal(routingPath('/x/%00/y'), null);
  t.equal(routingPath('/plain/path'), '/plain/path', 'the fast path is untouched');
});

t.test('a route for one scheme matches only requests over it, and beats a route for both on the same path', async (t) => {
  const r = compileRouter([
    route('/', { upstream: 'app' }),
    route('/', { return: { status: 301 }, rules: { scheme: 'http' } }),
    route('/tls-only/', { upstream: 'secure', rules: { scheme: 'https' } }),
  ]);
  t.equal(r.match('x', '/a', 'http')?.index, 1, 'cleartext: the http route');
  t.equal(r.match('x', '/a', 'https')?.index, 0, 'TLS: the route for both');
  t.equal(r.match('x', '/tls-only/a', 'https')?.index, 2);
  t.equal(r.match('x', '/tls-only/a', 'http')?.index, 1, 'an https route is not a match for cleartext: the next one is');
  t.equal(r.match('x', '/tls-only/a', 'https')?.label, 'https://*/tls-only/', 'the label names the scheme');
});
