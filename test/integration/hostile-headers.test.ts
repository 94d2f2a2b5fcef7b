/**
 * Header names with `_` against the real daemon: dropped before the upstream by default, as nginx does (CGI and
 * WSGI-style backends fold `_` and `-` together, so `X_Forwarded_For` would reach them as X-Forwarded-For),
 * forwarded with `limits.underscores_in_headers: true`.
 */
import t from 'tap';
import { Daemon, proxyAll } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { rawRequest, recordRequests } from '../helpers/raw.js';

const REQUEST = 'GET /u HTTP/1.1\r\nhost: u.test\r\nx_forwarded_for: 6.6.6.6\r\ntransfer_encoding: chunked\r\nx-plain: kept\r\nconnection: close\r\n\r\n';

for (const [setting, forwarded] of [['', false], ['limits:\n  underscores_in_headers: true', true]] as const) {
  t.test(`header names with an underscore are ${forwarded ? 'forwarded with underscores_in_headers: true' : 'dropped by default'}`, async (t) => {
    const up = await upstream(t, (_req, res) => res.end('ok\n'));
    const seen = recordRequests(up);
    const d = await new Daemon(t).start({ top: setting, body: proxyAll(up.url) });
    const r = await rawRequest(await d.port(), REQUEST, { timeoutMs: 30_000 });
    t.same(r.statuses, [200]);
    const names = seen.headers[0]!.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    t.ok(names.includes('x-plain'), 'other headers pass');
    t.equal(names.includes('x_forwarded_for'), forwarded, 'x_forwarded_for');
    t.equal(names.includes('transfer_encoding'), forwarded, 'transfer_encoding');
    const h = seen.headers[0]!;
    const xff = h[h.findIndex((n, i) => i % 2 === 0 && n.toLowerCase() === 'x-forwarded-for') + 1];
    t.equal(xff, '127.0.0.1', 'X-Forwarded-For is ours alone');
  });
}
