/**
 * @module Per-route rules through the real daemon with real clients (curl, raw sockets): the client address behind
 * trusted proxies, allow/deny, header rules and upstream_host, path rules (and the `..` inputs that must not open
 * a way around them), redirects.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';
import { makeCerts } from '../helpers/certs.js';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { upstream, type Upstream } from '../helpers/http.js';
import { rawRequest, recordRequests } from '../helpers/raw.js';

interface CurlResult {
  code: number;
  status: number;
  headers: Record<string, string[]>;
  body: string;
  stderr: string;
}

/** curl, headers and body parsed (`-i`); bounded by its own --max-time. */
function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-i', '--max-time', '20', ...args], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // With -L, one header block per response: the last one is the answer.
      let rest = stdout;
      let cut = rest.indexOf('\r\n\r\n');
      while (cut !== -1 && rest.startsWith('HTTP/', cut + 4)) {
        rest = rest.slice(cut + 4);
        cut = rest.indexOf('\r\n\r\n');
      }
      const head = cut === -1 ? rest : rest.slice(0, cut);
      const body = cut === -1 ? '' : rest.slice(cut + 4);
      const lines = head.split('\r\n');
      const headers: Record<string, string[]> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon === -1) continue;
        const name = line.slice(0, colon).toLowerCase();
        (headers[name] ??= []).push(line.slice(colon + 1).trim());
      }
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0), headers, body, stderr });
    });
  });
}

/** An upstream that answers with the request it got, as JSON, and a Server header a rule can remove. */
async function echo(t: Tap): Promise<Upstream & { seen: http.IncomingMessage[] }> {
  const seen: http.IncomingMessage[] = [];
  const up = await upstream(t, (req, res) => {
    seen.push(req);
    res.setHeader('server', 'echo/1');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, headers: req.headers, raw: req.rawHeaders }));
  });
  return { ...up, seen };
}
type Tap = Parameters<typeof upstream>[0];

async function accessLine(d: Daemon, requestId: string): Promise<Record<string, unknown>> {
  return d.waitForLine(`the access line of ${requestId}`, (l) => l.request_id === requestId, 30_000, d.accessLog);
}

t.test('trusted_proxies: behind a trusted proxy the client is the address X-Forwarded-For names, everywhere; from anyone else the header is not believed', async (t) => {
  const up = await echo(t);
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
trusted_proxies: [127.0.0.2, 10.0.0.0/8]
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /office/
    upstream: app
    allow: [203.0.113.0/24]
    request_headers: { set: { X-Client: $client_ip } }
  - path: /
    upstream: app
    request_headers: { set: { X-Client: $client_ip } }
`,
  });
  const port = await d.port();
  const url = `http://127.0.0.1:${port}`;

  const viaProxy = await curl(['--interface', '127.0.0.2', '-H', 'X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.1.1', '-H', 'X-Request-Id: via-proxy', `${url}/office/a`]);
  t.equal(viaProxy.status, 200, viaProxy.stderr);
  const seen = JSON.parse(viaProxy.body) as { headers: Record<string, string> };
  t.equal(seen.headers['x-client'], '203.0.113.9', '$client_ip is the rightmost untrusted entry');
  t.equal(seen.headers['x-forwarded-for'], '198.51.100.7, 203.0.113.9', 'X-Forwarded-For sent upstream ends with the client (our trusted hops dropped)');
  t.equal((await accessLine(d, 'via-proxy')).client, '203.0.113.9', 'the access log shows the client');

  const direct = await curl(['-H', 'X-Forwarded-For: 203.0.113.9', '-H', 'X-Request-Id: direct', `${url}/office/a`]);
  t.equal(direct.status, 403, 'from an untrusted peer the header is not believed: 127.0.0.1 is not allowed');
  t.equal((await accessLine(d, 'direct')).client, '127.0.0.1');

  const plain = await curl(['-H', 'X-Forwarded-For: 203.0.113.9', `${url}/other`]);
  const plainSeen = JSON.parse(plain.body) as { headers: Record<string, string> };
  t.equal(plainSeen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'an untrusted peer is appended, as always');
  t.equal(plainSeen.headers['x-client'], '127.0.0.1');

  const garbage = await curl(['--interface', '127.0.0.2', '-H', 'X-Forwarded-For: 203.0.113.9, not-an-ip', `${url}/other`]);
  const garbageSeen = JSON.parse(garbage.body) as { headers: Record<string, string> };
  t.equal(garbageSeen.headers['x-client'], '127.0.0.2', 'an entry that is not an address: the trusted peer is the client');
  t.equal(garbageSeen.headers['x-forwarded-for'], '203.0.113.9, not-an-ip, 127.0.0.2');

  const noHeader = await curl(['--interface', '127.0.0.2', `${url}/other`]);
  t.equal((JSON.parse(noHeader.body) as { headers: Record<string, string> }).headers['x-client'], '127.0.0.2', 'a trusted peer without the header is the client');
});

t.test('allow/deny: a denied client gets 403, logged and counted, its keep-alive connection kept; IPv6 and IPv4-mapped clients match their rules', async (t) => {
  const up = await echo(t);
  const body = (listen: string) => `
listeners:
  - listen: "${listen}"
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /private/
    upstream: app
    deny: [127.0.0.3]
    allow: [127.0.0.0/8]
  - path: /v6/
    upstream: app
    allow: ["::1"]
  - path: /closed/
    return: { status: 200, body: "never\\n" }
    deny: [all]
  - path: /
    upstream: app
`;
  const d = await new Daemon(t).start({ body: body('127.0.0.1:0') });
  const port = await d.port();
  const url = `http://127.0.0.1:${port}`;
  t.equal((await curl([`${url}/private/x`])).status, 200, '127.0.0.1 is allowed');
  const denied = await curl(['--interface', '127.0.0.3', '-H', 'X-Request-Id: denied-1', `${url}/private/x`]);
  t.equal(denied.status, 403, 'deny is written first, and matches first');
  t.match(denied.body, /403 Forbidden/);
  t.equal((await curl([`${url}/closed/`])).status, 403, 'deny: [all] on a return route');
  t.equal((await curl([`${url}/v6/`])).status, 403, 'an IPv4 client does not match an IPv6 rule');
  t.equal(up.seen.filter((r) => r.url === '/private/x').length, 1, 'nothing denied reached the upstream');

  const line = await accessLine(d, 'denied-1');
  t.match(line, { client: '127.0.0.3', status: 403, path: '/private/x', upstream: null, target: null });
  await d.waitForLine('the refusal in the error log', (l) => l.request_id === 'denied-1' && l.status === 403 && /allow\/deny/.test(String(l.reason)));
  const admin = await d.adminAddress();
  await waitFor('the 403s in /metrics', 30_000, async () => {
    const { samples } = parseExposition(await (await fetch(`http://${admin}/metrics`)).text());
    return sampleValue(samples, 'baton_requests_total', { route: '*/private/', upstream: 'app', status_class: '4xx' }) === 1 ? true : undefined;
  });

  // A 403 and then an allowed request on one connection: the 403 does not close it.
  const raw = await rawRequest(port, 'GET /closed/ HTTP/1.1\r\nHost: x\r\n\r\nGET /other HTTP/1.1\r\nHost: x\r\n\r\n', {
    until: (text) => (text.match(/HTTP\/1\.1 /g) ?? []).length === 2 && text.endsWith('}'),
    timeoutMs: 30_000,
  });
  t.strictSame(raw.statuses, [403, 200]);
  t.notMatch(raw.text, /connection: close/i);

  // The same config on an IPv6 socket bound to an IPv4-mapped address: the client is ::ffff:127.0.0.1, shown as 127.0.0.1.
  const mapped = await new Daemon(t).start({ body: body('[::ffff:127.0.0.1]:0') });
  const mappedPort = await mapped.port('[::ffff:7f00:1]:0');
  t.equal((await curl(['-H', 'X-Request-Id: mapped-1', `http://127.0.0.1:${mappedPort}/private/y`])).status, 200, 'an IPv4-mapped client matches 127.0.0.0/8');
  t.equal((await accessLine(mapped, 'mapped-1')).client, '127.0.0.1');

  const v6 = await new Daemon(t).start({ body: body('[::1]:0') });
  const v6Port = await v6.port('[::1]:0');
  t.equal((await curl([`http://[::1]:${v6Port}/v6/`])).status, 200, '::1 is allowed on /v6/');
  t.equal((await curl([`http://[::1]:${v6Port}/private/x`])).status, 403, '::1 is not in 127.0.0.0/8');
});

t.test('header rules, upstream_host and path rules reach the upstream; the access log keeps the target as received', async (t) => {
  const up = await echo(t);
  const ws = { url: '', host: '' };
  up.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    ws.url = req.url ?? '';
    ws.host = req.headers.host ?? '';
    const accept = crypto.createHash('sha1').update(String(req.headers['sec-websocket-key']) + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
  });
  recordRequests(up);
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /api/
    upstream: app
    strip_prefix: true
    add_prefix: /v2
    upstream_host: target
    request_headers:
      set: { X-Uri: "$scheme://$host$request_uri", X-Parts: "$path|$query|$request_id" }
      add: { X-Tag: [a, b] }
      remove: [X-Debug]
    response_headers:
      set: { X-Frame-Options: DENY }
      add: { X-Route: "api $request_id" }
      remove: [Server]
  - path: /fixed/
    upstream: app
    upstream_host: app.internal:8080
  - path: /admin/
    return: { status: 200, body: "admin route\\n" }
  - path: /
    upstream: app
`,
  });
  const port = await d.port();
  const url = `http://127.0.0.1:${port}`;

  const r = await curl(['-H', 'Host: shop.example:8080', '-H', 'X-Debug: 1', '-H', 'X-Tag: from-client', '-H', 'X-Request-Id: rules-1', `${url}/api/users?id=1`]);
  t.equal(r.status, 200, r.stderr);
  const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string>; raw: string[] };
  t.equal(seen.url, '/v2/users?id=1', 'prefix stripped, another added, query kept');
  t.equal(seen.headers.host, `127.0.0.1:${up.port}`, 'upstream_host: target sends the target\'s host:port');
  t.equal(seen.headers['x-forwarded-host'], 'shop.example:8080', 'X-Forwarded-Host keeps the client\'s');
  t.equal(seen.headers['x-uri'], 'http://shop.example/api/users?id=1');
  t.equal(seen.headers['x-parts'], '/api/users|id=1|rules-1');
  t.equal(seen.headers['x-debug'], undefined, 'removed');
  const tags = seen.raw.filter((_, i) => i % 2 === 1 && seen.raw[i - 1]!.toLowerCase() === 'x-tag');
  t.strictSame(tags, ['from-client', 'a', 'b'], 'add keeps the client\'s fields');
  t.strictSame(r.headers['x-frame-options'], ['DENY']);
  t.strictSame(r.headers['x-route'], ['api rules-1']);
  t.equal(r.headers.server, undefined, 'the upstream\'s Server header removed');
  t.equal((await accessLine(d, 'rules-1')).path, '/api/users?id=1', 'the access log shows the target as received');

  const fixed = await curl([`${url}/fixed/x`]);
  t.equal((JSON.parse(fixed.body) as { headers: Record<string, string> }).headers.host, 'app.internal:8080');

  // Dot segments and their encodings are resolved before routing and before the prefix is stripped.
  const admin = await curl(['--path-as-is', `${url}/api/../admin/x`]);
  t.equal(admin.body, 'admin route\n', '/api/../admin/x is routed by /admin/, not stripped into the upstream\'s /admin/x');
  t.equal((await curl(['--path-as-is', `${url}/api/%2e%2e/admin/x`])).body, 'admin route\n');
  t.equal((await curl(['--path-as-is', `${url}/api/x/..%2f..%2fadmin/`])).body, 'admin route\n');
  const inside = await curl(['--path-as-is', `${url}/api/a/%2e%2e/b%20c?q=%2e%2e`]);
  t.equal((JSON.parse(inside.body) as { url: string }).url, '/v2/b%20c?q=%2e%2e', 'a normalized path is sent normalized and encoded; the query as received');
  const climbing = await curl(['--path-as-is', `${url}/api/a/../../api/../../etc`]);
  t.equal((JSON.parse(climbing.body) as { url: string }).url, '/api/a/../../api/../../etc', 'climbing out of /api/ is routed by / (no path rules there), forwarded as received');

  // A WebSocket handshake on the route is rewritten the same way.
  const key = crypto.randomBytes(16).toString('base64');
  const hs = await rawRequest(port, `GET /api/ws?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`, { timeoutMs: 30_000, until: (s) => s.includes('\r\n\r\n') });
  t.match(hs.text, /^HTTP\/1\.1 101/);
  t.equal(ws.url, '/v2/ws?x=1');
  t.equal(ws.host, `127.0.0.1:${up.port}`);
});

t.test('redirect routes answer with the Location their template gives, over HTTP/1.1, HTTP/2 and to a WebSocket handshake', async (t) => {
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
    h2c: true
routes:
  - path: /
    redirect: { to: "https://$host$request_uri", status: 308 }
  - path: /moved/
    redirect: { to: "https://new.example/landing" }
`,
  });
  const port = await d.port();
  const r = await curl(['-H', 'Host: Example.COM:8080', '-H', 'X-Request-Id: redirect-1', `http://127.0.0.1:${port}/a/b?c=1&d=%20`]);
  t.equal(r.status, 308);
  t.strictSame(r.headers.location, ['https://example.com/a/b?c=1&d=%20'], 'the host without its port, the target as received');
  t.strictSame(r.headers['content-length'], ['0']);
  t.match(await accessLine(d, 'redirect-1'), { status: 308, upstream: null, path: '/a/b?c=1&d=%20' });
  const head = await curl(['-I', `http://127.0.0.1:${port}/moved/x`]);
  t.equal(head.status, 302, 'the default status');
  t.strictSame(head.headers.location, ['https://new.example/landing']);
  const h2 = await curl(['--http2-prior-knowledge', '-H', 'Host: h2.example', `http://127.0.0.1:${port}/x?y`]);
  t.equal(h2.status, 308);
  t.strictSame(h2.headers.location, ['https://h2.example/x?y']);
  const follow = await curl(['-L', '--max-redirs', '0', `http://127.0.0.1:${port}/z`]);
  t.match(follow.stderr, /Maximum \(0\) redirects followed/, 'curl follows it as a redirect');
  const hs = await rawRequest(port, 'GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', { timeoutMs: 30_000 });
  t.match(hs.text, /^HTTP\/1\.1 308 [^\r]*\r\n/);
  t.match(hs.text, /\r\nlocation: https:\/\/ws\.example\/chat\r\n/);
  t.ok(hs.closed, 'the handshake socket is closed after the answer');
});

t.test('the HTTP→HTTPS redirect in one line: a scheme: http route answers cleartext requests, TLS requests go on to the upstream', async (t) => {
  const up = await echo(t);
  const d = new Daemon(t);
  const certs = makeCerts(d.dir);
  await d.start({
    body: `
listeners:
  - listen: 127.0.0.1:0
  - listen: 127.0.0.3:0
    tls: { cert: site.crt, key: site.key }
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - { scheme: http, redirect: { to: "https://$host$request_uri", status: 301 } }
  - { path: /, upstream: app }
`,
  });
  const [port, tlsPort] = [await d.port('127.0.0.1:0'), await d.port('127.0.0.3:0')];
  const plain = await curl(['-H', 'Host: site.test', `http://127.0.0.1:${port}/shop?id=7`]);
  t.equal(plain.status, 301);
  t.strictSame(plain.headers.location, ['https://site.test/shop?id=7']);
  const followed = await curl(['-L', '--cacert', certs.ca, '--resolve', `site.test:443:127.0.0.3`, '--connect-to', `site.test:443:127.0.0.3:${tlsPort}`, '-H', 'X-Request-Id: followed-1', `http://site.test:${port}/shop?id=7`, '--resolve', `site.test:${port}:127.0.0.1`]);
  t.equal(followed.status, 200, `curl -L ends at the upstream over TLS: ${followed.stderr}`);
  t.equal((JSON.parse(followed.body) as { url: string }).url, '/shop?id=7');
  const lines = await waitFor('both access lines', 30_000, () => {
    const l = d.lines(d.accessLog).filter((x) => x.request_id === 'followed-1');
    return l.length === 2 ? l : undefined;
  });
  t.match(lines.map((l) => [l.status, l.upstream]).sort(), [[200, 'app'], [301, null]], 'one redirect, then the upstream');
});
