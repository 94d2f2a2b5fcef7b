// The floor for any Node.js proxy: N cluster workers sharing one port, each request streamed to the upstream
// through an undici Pool and the response body piped straight back with pool.stream(). No header processing
// beyond copying content-type/content-length, no logging, no routing.
//
//   node scripts/lib/bare-proxy.mjs PORT UPSTREAM_URL [WORKERS]
import cluster from 'node:cluster';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [port, upstream, workers = '2'] = process.argv.slice(2);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Workers accept on the shared socket themselves (as baton's workers do); the default round-robin would make the
// primary accept every connection and pass it over IPC, which halves throughput on short connections.
cluster.schedulingPolicy = cluster.SCHED_NONE;

if (cluster.isPrimary) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
  cluster.on('exit', (w, code, sig) => {
    process.stderr.write(`bare-proxy: worker ${w.process.pid} exited (${code ?? sig})\n`);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { Pool } = createRequire(path.join(repo, 'package.json'))('undici');
  const pool = new Pool(upstream, { keepAliveTimeout: 4000 });
  const server = http.createServer((req, res) => {
    pool.stream(
      { path: req.url, method: req.method, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
      ({ statusCode, headers }) => {
        const h = {};
        if (headers['content-type']) h['content-type'] = headers['content-type'];
        if (headers['content-length']) h['content-length'] = headers['content-length'];
        res.writeHead(statusCode, h);
        return res;
      },
      (err) => {
        if (!err) return;
        if (!res.headersSent) {
          res.writeHead(502, { 'content-length': 0 });
          res.end();
        } else res.destroy();
      },
    );
  });
  server.keepAliveTimeout = 65_000;
  server.listen(Number(port), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
