/**
 * @module The client a PROXY protocol header names, seen by everything after the connection's edge: access rules,
 * trusted_proxies (applied after the header), rate-limit keys, WebSocket handshakes and the access log. Raw sockets
 * send the headers (any client address, no HAProxy needed). Its own file: each integration file must finish within
 * tap's per-file timeout on a loaded machine.
 */
import type net from 'node:net';
import type http from 'node:http';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest } from '../helpers/raw.js';

t.test('the client a PROXY header names is the one access rules, trusted_proxies, rate limits and WebSocket handshakes see', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']}|${req.headers['x-forwarded-proto']}`));
  // The WebSocket handshake is answered by the upstream itself, with the X-Forwarded-For it got.
  up.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-seen-xff: ${req.headers['x-forwarded-for']}\r\n\r\n`);
  });
  const d = new Daemon(t);
  await d.start({
    top: 'trusted_proxies: [198.51.100.0/24]',
    body: `
listeners:
  - listen: 127.0.0.1:0
    proxy_protocol: true
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /
    upstream: app
  - path: /private/
    upstream: app
    deny: [203.0.113.66]
  - path: /limited
    upstream: app
    rate_limit: { rate: 1/m, burst: 0 }
`,
  });
  const port = await d.port('127.0.0.1:0');
  const from = (client: string, path: string, headers = '', connection = 'close') =>
    rawRequest(port, `PROXY TCP4 ${client} 192.0.2.1 40000 80\r\nGET ${path} HTTP/1.1\r\nhost: x\r\n${headers}connection: ${connection}\r\n\r\n`, { timeoutMs: 20_000 });
  const body = (text: string) => text.slice(text.indexOf('\r\n\r\n') + 4);

  t.same((await from('203.0.113.66', '/private/a')).statuses, [403], 'deny: the denied client the header names gets 403');
  t.same((await from('203.0.113.67', '/private/b')).statuses, [200], 'another client the header names is allowed');

  const trusted = await from('198.51.100.1', '/trusted', 'x-forwarded-for: 203.0.113.70\r\n');
  t.equal(body(trusted.text), '203.0.113.70|http', 'a trusted proxy named by the header: its X-Forwarded-For is believed');
  const untrusted = await from('203.0.113.71', '/untrusted', 'x-forwarded-for: 10.9.9.9\r\n');
  t.equal(body(untrusted.text), '10.9.9.9, 203.0.113.71|http', 'an untrusted client named by the header: it is appended, not believed');

  t.same((await from('203.0.113.80', '/limited')).statuses, [200], 'rate limit: the first request of a client passes');
  const second = await from('203.0.113.80', '/limited');
  t.same(second.statuses, [429], 'its second one within the minute gets 429');
  t.match(second.text, /retry-after: \d+/i, 'with Retry-After');
  t.same((await from('203.0.113.81', '/limited')).statuses, [200], 'another client the header names has its own bucket');

  const ws = await from('203.0.113.90', '/ws', 'upgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n', 'upgrade');
  t.match(ws.text, /x-seen-xff: 203\.0\.113\.90\r\n/, 'a WebSocket handshake goes upstream with the client the header named');

  const lines = await waitFor('access-log lines', 30_000, () => {
    const got = d.lines(d.accessLog).filter((l) => ['/private/a', '/trusted', '/limited'].includes(String(l.path)));
    return got.length >= 5 ? got : undefined;
  });
  // Sorted: two workers write the log, each line when its answer is done.
  t.same(lines.map((l) => [l.path, l.client, l.status]).sort(), [
    ['/private/a', '203.0.113.66', 403], ['/trusted', '203.0.113.70', 200],
    ['/limited', '203.0.113.80', 200], ['/limited', '203.0.113.80', 429], ['/limited', '203.0.113.81', 200],
  ].sort(), 'the access log names the same clients');
});
