/**
 * @module PROXY protocol listeners against the real daemon, with HAProxy as the sender (send-proxy, send-proxy-v2
 * with TLVs) in front of HTTP/1.1, h2c and TLS listeners, curl as the client, and raw sockets for the headers
 * HAProxy would never send (malformed, late, LOCAL, UNKNOWN, IPv6).
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import t from 'tap';
import { Daemon, proxyAll, waitFor, type Tap } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { HAPROXY_SOURCE, haproxy } from '../helpers/haproxy.js';
import { upstream, type Upstream } from '../helpers/http.js';
import { rawRequest } from '../helpers/raw.js';

/** The client's own address: HAProxy connects to baton from another one (HAPROXY_SOURCE). */
const CLIENT = '127.0.0.5';

/** An upstream that answers with the X-Forwarded-For it got. */
function echoXff(t: Tap): Promise<Upstream> {
  return upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']}|${req.headers['x-forwarded-proto']}`));
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '20', ...args], (err, stdout, stderr) => (err ? reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const LISTENERS = [
  '  - listen: 127.0.0.1:0',
  '    proxy_protocol: true',
  '  - listen: 127.0.0.6:0',
  '    proxy_protocol: true',
  '    h2c: true',
  '  - listen: 127.0.0.7:0',
  '    proxy_protocol: true',
  '    tls: { cert: site.crt, key: site.key }',
].join('\n');

async function proxied(t: Tap, top = ''): Promise<{ d: Daemon; ports: { h1: number; h2c: number; tls: number } }> {
  const up = await echoXff(t);
  const d = new Daemon(t);
  makeCerts(d.dir);
  await d.start({ body: proxyAll(up.url, LISTENERS), top });
  return { d, ports: { h1: await d.port('127.0.0.1:0'), h2c: await d.port('127.0.0.6:0'), tls: await d.port('127.0.0.7:0') } };
}

let shared: ReturnType<typeof proxied> | null = null;

/** One daemon (default limits) for the two cases that only send requests: stopped when the file ends. */
function sharedProxied(): ReturnType<typeof proxied> {
  shared ??= proxied(t);
  return shared;
}

t.test('the client a PROXY header names (v1, v2 with TLVs) is the client on HTTP/1.1, h2c and TLS listeners: X-Forwarded-For and the access log say so', async (t) => {
  const { d, ports } = await sharedProxied();
  const [v1, v2, v2tlv, h2c, tls] = await haproxy(t, d.dir, [
    { to: `127.0.0.1:${ports.h1}`, send: 'send-proxy' },
    { to: `127.0.0.1:${ports.h1}`, send: 'send-proxy-v2' },
    { to: `127.0.0.1:${ports.h1}`, send: 'send-proxy-v2 proxy-v2-options crc32c,unique-id,authority' },
    { to: `127.0.0.6:${ports.h2c}`, send: 'send-proxy-v2 proxy-v2-options crc32c' },
    { to: `127.0.0.7:${ports.tls}`, send: 'send-proxy-v2 proxy-v2-options unique-id' },
  ]) as [number, number, number, number, number];
  const via = ['--interface', CLIENT];
  t.equal(await curl([...via, `http://127.0.0.1:${v1}/v1`]), `${CLIENT}|http`, 'v1');
  t.equal(await curl([...via, `http://127.0.0.1:${v2}/v2`]), `${CLIENT}|http`, 'v2');
  t.equal(await curl([...via, `http://127.0.0.1:${v2tlv}/v2-tlv`]), `${CLIENT}|http`, 'v2 with TLVs');
  t.equal(await curl([...via, '--http2-prior-knowledge', `http://127.0.0.1:${h2c}/h2c`]), `${CLIENT}|http`, 'h2c');
  t.equal(await curl([...via, `http://127.0.0.1:${h2c}/h1-on-h2c-port`]), `${CLIENT}|http`, 'HTTP/1.1 on the h2c port');
  t.equal(await curl([...via, '-k', '--http2', `https://127.0.0.1:${tls}/tls-h2`]), `${CLIENT}|https`, 'TLS, HTTP/2');
  t.equal(await curl([...via, '-k', '--http1.1', `https://127.0.0.1:${tls}/tls-h1`]), `${CLIENT}|https`, 'TLS, HTTP/1.1');
  const paths = ['/v1', '/v2', '/v2-tlv', '/h2c', '/h1-on-h2c-port', '/tls-h2', '/tls-h1'];
  const lines = await waitFor('access-log lines', 30_000, () => {
    const got = d.lines(d.accessLog).filter((l) => paths.includes(String(l.path)));
    return got.length === paths.length ? got : undefined;
  });
  t.same(lines.map((l) => l.client), paths.map(() => CLIENT), 'every access-log line names the client, not HAProxy');
  t.same(lines.filter((l) => l.protocol === 'HTTP/2.0').map((l) => l.path).sort(), ['/h2c', '/tls-h2']);
  t.notOk(d.lines(d.accessLog).some((l) => l.client === HAPROXY_SOURCE), 'HAProxy\'s own address appears nowhere');
});

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const REQUEST = 'GET /raw HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n';

t.test('LOCAL and UNKNOWN headers keep the TCP peer; IPv6 clients and headers cut into pieces are read', async (t) => {
  const { ports } = await sharedProxied();
  const body = (text: string) => text.slice(text.indexOf('\r\n\r\n') + 4);
  const local = Buffer.concat([SIG, Buffer.from([0x20, 0x00, 0, 0]), Buffer.from(REQUEST)]);
  t.equal(body((await rawRequest(ports.h1, local)).text), '127.0.0.1|http', 'v2 LOCAL: the connection\'s own peer');
  t.equal(body((await rawRequest(ports.h1, `PROXY UNKNOWN\r\n${REQUEST}`)).text), '127.0.0.1|http', 'v1 UNKNOWN: the same');
  t.equal(body((await rawRequest(ports.h1, `PROXY TCP6 2001:db8::7 2001:db8::1 40000 80\r\n${REQUEST}`)).text), '2001:db8::7|http', 'v1 TCP6');
  const pieces = [...`PROXY TCP4 203.0.113.9 192.0.2.1 40000 80\r\n`].concat(REQUEST);
  t.equal(body((await rawRequest(ports.h1, pieces, { gapMs: 5, timeoutMs: 20_000 })).text), '203.0.113.9|http', 'a header sent byte by byte');
  const h2c = await rawRequest(ports.h2c, `PROXY TCP4 203.0.113.10 192.0.2.1 40000 80\r\n${REQUEST}`, { host: '127.0.0.6' });
  t.equal(body(h2c.text), '203.0.113.10|http', 'the h2c port sniffs what follows the header');
});

t.test('a connection without a valid PROXY header is closed, and the closures are logged with counts, not one line each; counts pending when the worker drains are logged then', async (t) => {
  const { d, ports } = await proxied(t, 'limits: { header_timeout: 1s }');
  const bad: (string | Buffer)[] = [
    REQUEST,
    'PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n' + REQUEST,
    Buffer.concat([SIG, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12), Buffer.from(REQUEST)]),
    'PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGARBAGE\r\n\r\n',
  ];
  const results = await Promise.all(bad.map((b) => rawRequest(ports.h1, b, { timeoutMs: 20_000 })));
  t.same(results.map((r) => r.closed), [true, true, true, true], 'each connection is closed');
  t.same(results.map((r) => r.statuses.length === 0 || r.statuses[0] === 400), [true, true, true, true], 'nothing is answered without a header (the last one has a valid header: its garbage gets the parser\'s 400)');
  const late = await rawRequest(ports.h1, 'PROXY TCP4 203.', { timeoutMs: 20_000 });
  t.ok(late.closed, 'a header that does not complete within header_timeout is closed');
  const flood = await Promise.all(Array.from({ length: 20 }, () => rawRequest(ports.h1, REQUEST, { timeoutMs: 20_000 })));
  t.ok(flood.every((r) => r.closed && r.statuses.length === 0), 'a flood of connections without a header: all closed, none answered');
  const closures = 3 + 1 + 20;
  // The first closure is logged at once, the rest wait for the next line (10 s later); a reload drains the worker,
  // which logs them when its listener has closed instead of exiting with them.
  d.signal('SIGHUP');
  const lines = await waitFor('every closure counted in the log', 40_000, () => {
    const got = d.lines().filter((l) => l.msg === 'PROXY protocol: connections without a valid header closed');
    return got.reduce((n, l) => n + Number(l.closed), 0) >= closures ? got : undefined;
  });
  t.equal(lines.reduce((n, l) => n + Number(l.closed), 0), closures, `${closures} closures counted`);
  t.ok(lines.length <= 3, `in ${lines.length} log lines, not one per connection`);
  const reasons = Object.assign({}, ...lines.map((l) => l.reasons)) as Record<string, number>;
  t.ok(reasons['no PROXY protocol header'] && reasons['no complete header within header_timeout'], 'the reasons are named');
  t.equal(d.lines(d.accessLog).filter((l) => l.path === '/raw').length, 0, 'nothing was proxied for them');
});

/** Requests through HAProxy one after another, from CLIENT, until `stop`; every answer and failure counted. */
function keepAsking(port: number): { stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  const outcome = { ok: 0, failed: [] as string[] };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2, localAddress: CLIENT });
  const loop = (async () => {
    for (let i = 0; running && i < 100_000; i++) {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: `/loop/${i}`, agent }, (res) => {
          let body = '';
          res.on('data', (c) => { body += c; });
          res.on('end', () => {
            if (res.statusCode === 200 && body === `${CLIENT}|http`) outcome.ok++;
            else outcome.failed.push(`${res.statusCode} ${body}`);
            resolve();
          });
        });
        req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
        req.on('error', (err) => { outcome.failed.push(err.message); resolve(); });
      });
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
      return outcome;
    },
  };
}

t.test('a PROXY listener behind HAProxy serves through a reload and a binary upgrade without a failed request', async (t) => {
  const { d, ports } = await proxied(t);
  const [front] = await haproxy(t, d.dir, [{ to: `127.0.0.1:${ports.h1}`, send: 'send-proxy-v2' }]) as [number];
  const load = keepAsking(front);
  const served = () => d.lines(d.accessLog).filter((l) => String(l.path).startsWith('/loop/')).length;
  await waitFor('requests flowing', 30_000, () => (served() > 20 ? true : undefined));
  const oldPid = d.masterPid;
  d.signal('SIGHUP');
  await d.waitForLine('generation 2 ready', (l) => l.msg === 'generation ready' && l.generation === 2, 60_000);
  const afterReload = served();
  await waitFor('requests served by generation 2', 30_000, () => (served() > afterReload + 20 ? true : undefined));
  d.signal('SIGUSR2');
  const newPid = await waitFor('the new master\'s pid file', 60_000, () => {
    try {
      const pid = d.masterPid;
      return pid !== oldPid ? pid : undefined;
    } catch {
      return undefined;
    }
  });
  d.signal('SIGWINCH', oldPid);
  d.signal('SIGQUIT', oldPid);
  const afterUpgrade = served();
  await waitFor('requests served by the new master', 30_000, () => (served() > afterUpgrade + 20 ? true : undefined));
  const outcome = await load.stop();
  t.same(outcome.failed, [], 'no request failed, and every answer named the client');
  t.ok(outcome.ok > 60, `${outcome.ok} requests served`);
  t.not(newPid, oldPid);
});
