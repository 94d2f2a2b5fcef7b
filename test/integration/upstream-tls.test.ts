/**
 * @module HTTPS upstreams against the real daemon, with a test CA made by openssl for the run: verification
 * against the CAs (the system's by default, plus `tls.ca`), the name checked (`server_name`, else the URL's
 * host), mTLS, `verify: false`, HTTP/2 by ALPN, health checks with the same settings, and files re-read on HUP.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import t from 'tap';
import { Daemon, waitFor, type Tap } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { request } from '../helpers/http.js';

interface Seen {
  servername: string | null;
  peer: string | null;
  version: string;
}

/** An HTTPS upstream with the site.test certificate; `mtls` requires a client certificate from the test CA. */
async function httpsUpstream(t: Tap, certs: string, opts: { mtls?: boolean; h2?: boolean } = {}): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const options = {
    cert: fs.readFileSync(path.join(certs, 'site.crt')),
    key: fs.readFileSync(path.join(certs, 'site.key')),
    ...(opts.mtls ? { ca: fs.readFileSync(path.join(certs, 'ca.crt')), requestCert: true, rejectUnauthorized: true } : null),
  };
  const handler = (req: { socket: unknown; httpVersion: string; resume(): void }, res: { end(s: string): void }) => {
    const s = req.socket as tls.TLSSocket;
    const peer = s.getPeerCertificate?.();
    seen.push({ servername: (s as unknown as { servername?: string }).servername || null, peer: peer && peer.subject ? String(peer.subject.CN) : null, version: req.httpVersion });
    req.resume();
    res.end(`hello over ${req.httpVersion}\n`);
  };
  const server = opts.h2 ? http2.createSecureServer(options, handler as never) : https.createServer(options, handler as never);
  const sockets = new Set<{ destroy(): void }>();
  server.on('secureConnection', (s: tls.TLSSocket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { port: (server.address() as { port: number }).port, seen };
}

function body(targets: string, extra: string): string {
  return `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [${targets}]${extra}
routes:
  - path: /
    upstream: app
`;
}

async function daemon(t: Tap, certs: string, targets: string, extra = ''): Promise<{ d: Daemon; port: number }> {
  const d = new Daemon(t);
  for (const f of fs.readdirSync(certs)) fs.copyFileSync(path.join(certs, f), path.join(d.dir, f));
  await d.start({ body: body(targets, extra) });
  return { d, port: await d.port() };
}

function certDir(t: Tap): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-certs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  return dir;
}

const certs = certDir(t);
const otherCa = certDir(t);
fs.copyFileSync(path.join(otherCa, 'ca.crt'), path.join(certs, 'other-ca.crt'));

t.test('an https target verified with tls.ca and server_name is proxied, with the name sent as SNI', async (t) => {
  const up = await httpsUpstream(t, certs);
  const { port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: ca.crt, server_name: site.test }');
  const r = await request(port, '/x');
  t.equal(r.status, 200);
  t.equal(r.body, 'hello over 1.1\n');
  t.equal(up.seen[0]?.servername, 'site.test');
});

t.test('by default the system CAs decide: a certificate from an unknown CA is a 502 with a log line naming the target and the reason', async (t) => {
  const up = await httpsUpstream(t, certs);
  const { d, port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`);
  t.equal((await request(port, '/x')).status, 502);
  const line = await d.waitForLine('the verification failure', (l) => l.msg === 'upstream request failed' && l.target === `127.0.0.1:${up.port}`);
  t.match(line, { upstream: 'app', code: /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/, error: /certificate/i });
  t.equal(up.seen.length, 0, 'no request reached the upstream');
});

t.test('a wrong CA or a name that does not match is a 502; the failure counts for passive health', async (t) => {
  const bad = await httpsUpstream(t, certs);
  const good = await httpsUpstream(t, certs);
  const { d, port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${bad.port}" }, { url: "https://localhost:${good.port}" }`, '\n    tls: { ca: other-ca.crt, server_name: site.test }\n    max_fails: 1');
  t.equal((await request(port, '/1')).status, 502, 'neither target has a certificate from other-ca');
  await d.waitForLine('a target taken out', (l) => String(l.msg).startsWith('upstream target taken out'));
  const name = await daemon(t, certs, `{ url: "https://127.0.0.1:${good.port}" }`, '\n    tls: { ca: ca.crt }');
  t.equal((await request(name.port, '/2')).status, 502, 'the certificate does not name 127.0.0.1');
  const line = await name.d.waitForLine('the name mismatch', (l) => l.msg === 'upstream request failed');
  t.match(line, { code: 'ERR_TLS_CERT_ALTNAME_INVALID', target: `127.0.0.1:${good.port}` });
});

t.test('mTLS: an upstream that requires a client certificate gets tls.cert and tls.key; without them, 502', async (t) => {
  const up = await httpsUpstream(t, certs, { mtls: true });
  const without = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: ca.crt, server_name: site.test }');
  t.equal((await request(without.port, '/x')).status, 502);
  const line = await without.d.waitForLine('the refused handshake', (l) => l.msg === 'upstream request failed');
  // TLS 1.3: the client's handshake is done before the server checks the certificate, so the refusal (alert 116)
  // may reach undici only as the connection closing under the request.
  t.match(line, { target: `127.0.0.1:${up.port}`, code: /^(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET|UND_ERR_SOCKET)$/ });
  const withCert = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: ca.crt, server_name: site.test, cert: client.crt, key: client.key }');
  const r = await request(withCert.port, '/x');
  t.equal(r.status, 200);
  t.equal(up.seen.at(-1)?.peer, 'baton-client', 'the upstream saw our client certificate');
});

t.test('verify: false is an explicit opt-out, said in the log at start', async (t) => {
  const up = await httpsUpstream(t, certs);
  const { d, port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { verify: false }');
  t.equal((await request(port, '/x')).status, 200);
  await d.waitForLine('the warning', (l) => l.level === 'warn' && l.upstream === 'app' && String(l.msg).includes('tls.verify is false'));
});

t.test('protocol: http2 speaks HTTP/2 by ALPN; a target that only offers HTTP/1.1 is a 502 saying so', async (t) => {
  const h2 = await httpsUpstream(t, certs, { h2: true });
  const h1 = await httpsUpstream(t, certs);
  const { d, port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${h2.port}" }`, '\n    protocol: http2\n    tls: { ca: ca.crt, server_name: site.test }');
  const r = await request(port, '/x');
  t.equal(r.body, 'hello over 2.0\n');
  const only1 = await daemon(t, certs, `{ url: "https://127.0.0.1:${h1.port}" }`, '\n    protocol: http2\n    tls: { ca: ca.crt, server_name: site.test }');
  t.equal((await request(only1.port, '/x')).status, 502);
  // Node's https server refuses an ALPN list without http/1.1 (alert 120); a server without ALPN accepts and says nothing.
  await only1.d.waitForLine('the ALPN failure', (l) => l.msg === 'upstream request failed' && /^(BATON_NO_H2|ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL)$/.test(String(l.code)));
  t.equal(h1.seen.length, 0, 'nothing reached the HTTP/1.1-only target');
  void d;
});

t.test('health checks use the same TLS settings: a target whose certificate fails them is taken out', async (t) => {
  const up = await httpsUpstream(t, certs);
  const hc = '\n    health_check: { path: /health, interval: 200ms, timeout: 2s }';
  const ok = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }, { url: "https://127.0.0.1:${up.port}" }`, `\n    tls: { ca: ca.crt, server_name: site.test }${hc}`);
  await waitFor('health checks over TLS', 30_000, () => (up.seen.some((s) => s.servername === 'site.test') ? true : undefined));
  t.notOk(ok.d.lines().some((l) => l.msg === 'health check: target taken out'), 'checks pass with the right CA');
  const bad = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }, { url: "https://127.0.0.1:${up.port}" }`, `\n    tls: { ca: other-ca.crt, server_name: site.test }${hc}`);
  const line = await bad.d.waitForLine('a target taken out by checks', (l) => l.msg === 'health check: target taken out', 30_000);
  t.match(String(line.result), /certificate|CERT/i);
});

t.test('TLS files are read at load time: a bad one fails the reload and changes nothing; a good one takes effect on HUP', async (t) => {
  const up = await httpsUpstream(t, certs);
  const { d, port } = await daemon(t, certs, `{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: other-ca.crt, server_name: site.test }');
  t.equal((await request(port, '/before')).status, 502, 'other-ca does not verify it');
  d.writeConfig({ body: body(`{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: missing-ca.crt, server_name: site.test }') });
  d.signal('SIGHUP');
  const failed = await d.waitForLine('the failed reload', (l) => String(l.msg).startsWith('reload failed'));
  t.match(JSON.stringify(failed.errors), /missing-ca\.crt/);
  fs.copyFileSync(path.join(certs, 'ca.crt'), path.join(d.dir, 'other-ca.crt'));
  d.writeConfig({ body: body(`{ url: "https://127.0.0.1:${up.port}" }`, '\n    tls: { ca: other-ca.crt, server_name: site.test }') });
  d.signal('SIGHUP');
  await waitFor('the new CA to take effect', 30_000, async () => ((await request(port, '/after')).status === 200 ? true : undefined));
  t.pass('after HUP the file is read again and the target verifies');
});
