/**
 * Request smuggling and request-target tricks against the real daemon, with raw sockets. Each smuggling
 * attempt carries a second request (`GET /smuggled`) hidden behind ambiguous framing: it must get a 400 (or
 * 505) and a close, and the hidden request must never reach the upstream. Paths that try to escape a route
 * are routed where the upstream would resolve them.
 */
import t from 'tap';
import { Daemon } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest, recordRequests } from '../helpers/raw.js';

const H = 'host: smuggle.test\r\n';
const HIDDEN = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;

/** name → the bytes; every one must be refused with a 4xx/5xx and a close. */
const REFUSED: Record<string, { bytes: string; status: number }> = {
  'Content-Length with Transfer-Encoding': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding with Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\ncontent-length: 6\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'two different Content-Lengths': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 0\r\ncontent-length: 44\r\n\r\n${HIDDEN}`, status: 400 },
  'two equal Content-Lengths': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 3\r\ncontent-length: 3\r\n\r\nabc${HIDDEN}`, status: 400 },
  'a Content-Length list': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 3, 3\r\n\r\nabc${HIDDEN}`, status: 400 },
  'a negative Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: -1\r\n\r\n${HIDDEN}`, status: 400 },
  'a signed Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: +3\r\n\r\nabc${HIDDEN}`, status: 400 },
  'a hex Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 0x3\r\n\r\nabc${HIDDEN}`, status: 400 },
  'an overflowing Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}content-length: 18446744073709551620\r\n\r\n${HIDDEN}`, status: 400 },
  'space before the colon of Content-Length': { bytes: `POST /s HTTP/1.1\r\n${H}content-length : 3\r\n\r\nabc${HIDDEN}`, status: 400 },
  'Transfer-Encoding: xchunked': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: xchunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding: chunked, identity': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding: identity, chunked': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: identity, chunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding: gzip': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: gzip\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a quoted Transfer-Encoding': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: "chunked"\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'space before the colon of Transfer-Encoding': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding : chunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding folded onto a second line': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'two Transfer-Encoding fields': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\ntransfer-encoding: x\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'Transfer-Encoding in HTTP/1.0': { bytes: `POST /s HTTP/1.0\r\n${H}transfer-encoding: chunked\r\n\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a chunk size that is not hex': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a negative chunk size': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'an overflowing chunk size': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a 0x chunk size': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a chunk longer than its size': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'a chunk size ended by a bare LF': { bytes: `POST /s HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n${HIDDEN}`, status: 400 },
  'bare LF line endings': { bytes: `GET /s HTTP/1.1\n${H.replace('\r', '')}\n${HIDDEN}`, status: 400 },
  'a bare CR': { bytes: `GET /s HTTP/1.1\r${H}\r\n${HIDDEN}`, status: 400 },
  'two Host fields': { bytes: `GET /s HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\n\r\n${HIDDEN}`, status: 400 },
  'a Host with a path': { bytes: `GET /s HTTP/1.1\r\nhost: a.test/admin\r\n\r\n${HIDDEN}`, status: 400 },
  'a Host with userinfo': { bytes: `GET /s HTTP/1.1\r\nhost: user@a.test\r\n\r\n${HIDDEN}`, status: 400 },
  'no Host in HTTP/1.1': { bytes: `GET /s HTTP/1.1\r\n\r\n${HIDDEN}`, status: 400 },
  'an HTTP/2.0 request line on an HTTP/1 connection': { bytes: `GET /s HTTP/2.0\r\n${H}\r\n${HIDDEN}`, status: 505 },
  'an HTTP/0.9 request line': { bytes: `GET /s\r\n\r\n${HIDDEN}`, status: 505 },
  'an unknown HTTP version': { bytes: `GET /s HTTP/1.2\r\n${H}\r\n${HIDDEN}`, status: 400 },
  'a header name with a space': { bytes: `GET /s HTTP/1.1\r\n${H}x y: 1\r\n\r\n${HIDDEN}`, status: 400 },
  'a header name with a control character': { bytes: `GET /s HTTP/1.1\r\n${H}x\x01y: 1\r\n\r\n${HIDDEN}`, status: 400 },
  'a header value with NUL': { bytes: `GET /s HTTP/1.1\r\n${H}x-a: a\x00b\r\n\r\n${HIDDEN}`, status: 400 },
  'a header value with DEL': { bytes: `GET /s HTTP/1.1\r\n${H}x-a: a\x7fb\r\n\r\n${HIDDEN}`, status: 400 },
  'a percent-encoded NUL in the path': { bytes: `GET /s/%00 HTTP/1.1\r\n${H}\r\n${HIDDEN}`, status: 400 },
  'a path that does not decode': { bytes: `GET /s/%zz HTTP/1.1\r\n${H}\r\n${HIDDEN}`, status: 400 },
  'an asterisk target': { bytes: `OPTIONS * HTTP/1.1\r\n${H}\r\n${HIDDEN}`, status: 400 },
  'CONNECT': { bytes: `CONNECT internal.test:443 HTTP/1.1\r\nhost: internal.test:443\r\n\r\n${HIDDEN}`, status: 405 },
  'an Expect other than 100-continue': { bytes: `POST /s HTTP/1.1\r\n${H}expect: 200-ok\r\ncontent-length: ${HIDDEN.length}\r\n\r\n${HIDDEN}`, status: 417 },
};

t.test('request smuggling attempts get an error and a close, and nothing hidden reaches the upstream', async (t) => {
  const up = await upstream(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end(`upstream ${req.method} ${req.url}\n`));
  });
  const seen = recordRequests(up);
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${up.url}" }]
routes:
  - path: /admin/
    return: { status: 403, body: "admin is internal\\n" }
  - path: /public/
    upstream: app
  - path: /
    upstream: app
`,
  });
  const port = await d.port();
  const workers = d.workerPids();

  for (const [name, { bytes, status }] of Object.entries(REFUSED)) {
    t.test(`${name}: ${status} and a close`, async (t) => {
      const r = await rawRequest(port, bytes, { timeoutMs: 30_000 });
      t.same(r.statuses, [status], `exactly one response, ${status}`);
      t.ok(r.closed, 'the connection is closed');
    });
  }

  t.test('valid framing variants are served: chunked in any case, with whitespace around it', async (t) => {
    for (const te of ['chunked', 'CHUNKED', '\tchunked', 'chunked ']) {
      const r = await rawRequest(port, `POST /te HTTP/1.1\r\n${H}transfer-encoding: ${te}\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
      t.same(r.statuses, [200], JSON.stringify(te));
    }
  });

  t.test('the hidden request never reached the upstream, and no worker died', async (t) => {
    await new Promise((r) => setTimeout(r, 200));
    t.notOk(seen.started.some((l) => l.includes('/smuggled')), `upstream saw: ${seen.started.join(', ')}`);
    t.same(d.workerPids().sort(), workers.sort());
  });

  t.test('pipelined requests are answered in order, one at a time; none after a request that closes the connection', async (t) => {
    const five = Array.from({ length: 5 }, (_, i) => `GET /pipe/${i} HTTP/1.1\r\n${H}\r\n`).join('');
    const r = await rawRequest(port, five + `GET /pipe/last HTTP/1.1\r\n${H}connection: close\r\n\r\n` + `GET /pipe/after-close HTTP/1.1\r\n${H}\r\n`);
    t.same(r.statuses, [200, 200, 200, 200, 200, 200]);
    t.same([...r.text.matchAll(/upstream GET (\/pipe\/\S+)/g)].map((m) => m[1]), ['/pipe/0', '/pipe/1', '/pipe/2', '/pipe/3', '/pipe/4', '/pipe/last'], 'in order');
    t.ok(r.closed);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.notOk(seen.started.includes('GET /pipe/after-close'), 'the request after Connection: close was not processed');
  });

  t.test('header fields with invalid names or values never reach the upstream', async (t) => {
    for (const h of seen.headers) {
      for (let i = 0; i < h.length; i += 2) {
        t.ok(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h[i]!), `valid name ${JSON.stringify(h[i])}`);
        t.notOk(/[\x00-\x08\x0a-\x1f\x7f]/.test(h[i + 1]!), `valid value for ${h[i]}`);
      }
    }
  });

  t.test('paths that try to leave a route are routed where they lead', async (t) => {
    const tricks = [
      '/public/../admin/x', '/public/%2e%2e/admin/x', '/public/%2E%2E%2Fadmin/x', '/public/..%2fadmin/x', '/public/..\\admin/x',
      '//admin/x', '/./admin/x', '/%61dmin/x', '/admin;jsessionid=1/x', '/public/..;/admin/x', '/public/%2e%2e;x/admin/x',
    ];
    for (const p of tricks) {
      const r = await rawRequest(port, `GET ${p} HTTP/1.1\r\n${H}connection: close\r\n\r\n`);
      t.same(r.statuses, [403], `${p} is routed to /admin/`);
    }
    const abs = await rawRequest(port, `GET http://smuggle.test/public/../admin/x HTTP/1.1\r\n${H}connection: close\r\n\r\n`);
    t.same(abs.statuses, [403], 'absolute-form targets are normalized too');
    t.notOk(seen.started.some((l) => l.includes('admin')), 'none reached the upstream');
  });

  t.test('an absolute-form target is proxied with its path, and its authority as Host', async (t) => {
    const r = await rawRequest(port, `GET http://abs.test:8080/public/page?q=1 HTTP/1.1\r\nhost: other.test\r\nconnection: close\r\n\r\n`);
    t.same(r.statuses, [200]);
    t.match(r.text, /upstream GET \/public\/page\?q=1/);
    const i = seen.started.lastIndexOf('GET /public/page?q=1');
    const h = seen.headers[i]!;
    t.equal(h[h.findIndex((x, k) => k % 2 === 0 && x.toLowerCase() === 'host') + 1], 'abs.test:8080');
  });
});
