// The server process of scripts/conn-memory (run with --expose-gc): listens on 127.0.0.1 with baton's own
// connection code (dist/lib/worker/servers.js, as a worker runs it, behind a trivial request handler) or with
// bare Node servers, and answers the parent over IPC: its ports, its counts (connections, HTTP/2 sessions), and
// {measure: file or null}: after GC, VmRSS and the counts, and a heap snapshot written to the file.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import v8 from 'node:v8';

const [mode, root, certFile, keyFile] = process.argv.slice(2);
const cert = fs.readFileSync(certFile);
const key = fs.readFileSync(keyFile);
const listen = (s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port)));
let counts;
const ports = {};

if (mode === 'baton') {
  const { createServer } = await import(path.join(root, 'dist/lib/worker/servers.js'));
  const { Drainer } = await import(path.join(root, 'dist/lib/worker/drain.js'));
  const { DEFAULT_LIMITS } = await import(path.join(root, 'dist/lib/config/sections/limits.js'));
  const drainer = new Drainer();
  const handlers = { request: (_req, res) => res.end('ok'), upgrade: (_r, s) => s.destroy(), clientError: (_e, s) => s.destroy() };
  // Idle clients are what is measured: no header or keep-alive timeout may close them meanwhile.
  const limits = { ...DEFAULT_LIMITS, headerTimeout: 600_000, keepaliveTimeout: 600_000 };
  const make = (listener) => listen(createServer(listener, handlers, drainer, limits));
  ports.h1 = await make({ address: { key: 'h1' }, h2c: false, tls: null });
  ports.h2c = await make({ address: { key: 'h2c' }, h2c: true, tls: null });
  ports.tls = await make({ address: { key: 'tls' }, h2c: false, tls: { cert, key, sni: [] } });
  counts = () => ({ connections: drainer.connections(), sessions: drainer.sessions() });
} else {
  let connections = 0;
  let sessions = 0;
  const count = (server, event) => {
    server.on(event, (s) => { connections++; s.once('close', () => connections--); });
    server.on('session', (s) => { sessions++; s.once('close', () => sessions--); });
  };
  const answer = (_req, res) => res.end('ok');
  const h1 = http.createServer({ headersTimeout: 600_000, requestTimeout: 0 }, answer);
  const h2c = http2.createServer(answer);
  const secure = http2.createSecureServer({ cert, key, allowHTTP1: true }, answer);
  count(h1, 'connection');
  count(h2c, 'connection');
  count(secure, 'secureConnection');
  ports.h1 = await listen(h1);
  ports.h2c = await listen(h2c);
  ports.tls = await listen(secure);
  counts = () => ({ connections, sessions });
}

/** After GC: VmRSS, and with `snapshot` a heap snapshot written to that file (the parent reads it). */
function measure(snapshot) {
  for (let i = 0; i < 4; i++) global.gc();
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  if (snapshot) v8.writeHeapSnapshot(snapshot);
  return { rss, ...counts() };
}

process.on('message', (m) => process.send(m.measure !== undefined ? measure(m.measure) : counts()));
process.send({ ports });
