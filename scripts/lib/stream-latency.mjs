// scripts/stream-latency — what a streamed response costs in latency on each kind of listener: a keep-alive client
// fetches, one request at a time, a response its upstream writes in small pieces (head, then a chunk every few
// ms). A listener that leaves Nagle's algorithm on holds each piece until the client ACKs the one before, and a
// client that delays its ACKs (as Linux does on a request/response connection) turns that into a 40 ms stall per
// response. Prints, per target, the median, p90 and worst time per request, and each median against the upstream's
// own (the floor: the pieces' spacing) and nginx's (proxy_buffering off) in the same run. `--help` for flags.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { HOST, NGINX_TEMP_PATHS, REPO_DIR, die, freePorts, httpGet, log, makeCert, mkTempDir, percentile, runMain, signal, spawnTracked, table, waitExit, waitFor, which } from './common.mjs';

const HELP = `usage: scripts/stream-latency [options]

Starts an upstream in this process (GET /: head at once, then --chunks pieces of a few bytes, --gap-ms apart),
baton (1 worker) with four listeners in front of it (HTTP/1.1; h2c: true; TLS, HTTP/1.1 by ALPN;
proxy_protocol: true) and, when nginx is installed, nginx (proxy_buffering off) on a plain listener. One keep-alive
client per target sends --requests requests one after the other. Prints per target: median, p90 and worst ms per
request; the median over the upstream's and over nginx's.

  --requests N   requests per target (default 30)
  --chunks N     body pieces per response (default 4)
  --gap-ms N     ms between pieces (default 2)
  --node PATH    node binary for baton (default: the one running this script)
  --baton PATH   baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
`;

function parseArgs(argv) {
  const o = { requests: 30, chunks: 4, gapMs: 2, node: process.execPath, baton: path.join(REPO_DIR, 'bin/baton') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    const int = (lo, hi) => { const n = Number(next()); if (!Number.isInteger(n) || n < lo || n > hi) die(`${a} needs an integer in ${lo}..${hi}`); return n; };
    switch (a) {
      case '-h': case '--help': process.stdout.write(HELP); process.exit(0);
      case '--requests': o.requests = int(1, 10_000); break;
      case '--chunks': o.chunks = int(1, 1000); break;
      case '--gap-ms': o.gapMs = int(0, 1000); break;
      case '--node': o.node = path.resolve(next()); break;
      case '--baton': o.baton = path.resolve(next()); break;
      default: die(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

/** An agent whose connections start with a PROXY v1 header, for a proxy_protocol listener. */
function proxyAgent(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  agent.createConnection = () => {
    const s = net.connect(port, HOST);
    s.write(`PROXY TCP4 203.0.113.9 ${HOST} 40000 ${port}\r\n`);
    return s;
  };
  return agent;
}

/** --requests sequential GETs on one keep-alive connection; ms per request (whole body read). */
async function measure(t, o) {
  const mod = t.tls ? https : http;
  const agent = t.proxy ? proxyAgent(t.port) : new mod.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const times = [];
  for (let i = 0; i < o.requests + 1; i++) {
    const t0 = performance.now();
    await new Promise((ok, bad) => {
      const req = mod.get({ host: HOST, port: t.port, path: '/', agent, timeout: 10_000 }, (res) => {
        if (res.statusCode !== 200) bad(new Error(`${t.name}: status ${res.statusCode}`));
        res.resume();
        res.on('end', ok);
      });
      req.on('timeout', () => req.destroy(new Error(`${t.name}: no answer in 10 s`)));
      req.on('error', bad);
    });
    if (i > 0) times.push(performance.now() - t0); // the first pays for the connection (and the handshake)
  }
  agent.destroy();
  return times.sort((a, b) => a - b);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = mkTempDir('baton-stream-');
  const [up, plain, h2c, tlsPort, proxy, admin, ngx] = await freePorts(7);
  const upstream = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.flushHeaders();
    let i = 0;
    const t = setInterval(() => {
      res.write(`piece ${i}\n`);
      if (++i === o.chunks) {
        clearInterval(t);
        res.end();
      }
    }, o.gapMs);
  });
  await new Promise((r) => upstream.listen(up, HOST, r));
  const { cert, key } = await makeCert(dir);
  fs.writeFileSync(`${dir}/baton.yaml`, `pid_file: baton.pid
workers: 1
log: { level: warn, error: error.log, access: off }
admin: { listen: ${HOST}:${admin} }
listeners:
  - listen: ${HOST}:${plain}
  - listen: ${HOST}:${h2c}
    h2c: true
  - listen: ${HOST}:${tlsPort}
    tls: { cert: ${cert}, key: ${key} }
  - listen: ${HOST}:${proxy}
    proxy_protocol: true
upstreams:
  app:
    targets: [ { url: "http://${HOST}:${up}" } ]
routes:
  - path: /
    upstream: app
`);
  const baton = spawnTracked(o.node, [o.baton, '-c', `${dir}/baton.yaml`], { cwd: dir, stdout: `${dir}/baton.out`, stderr: `${dir}/baton.out` });
  if (!(await waitFor(async () => (await httpGet(plain, '/', { timeout: 5000 }))?.status === 200, 30_000, 200))) die(`baton did not start (${dir}/baton.out)`, 1);
  const stops = [baton];
  const targets = [{ name: 'upstream (direct)', port: up }];
  if (which('nginx')) {
    fs.writeFileSync(`${dir}/nginx.conf`, `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log warn;
events {} http { access_log off; ${NGINX_TEMP_PATHS(`${dir}/nginx-temp`)}
upstream app { server ${HOST}:${up}; keepalive 8; }
server { listen ${HOST}:${ngx}; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } } }
`);
    const nginx = spawnTracked('nginx', ['-p', `${dir}/`, '-c', `${dir}/nginx.conf`], { cwd: dir, stdout: `${dir}/nginx.out`, stderr: `${dir}/nginx.out` });
    stops.push(nginx);
    if (await waitFor(async () => (await httpGet(ngx, '/', { timeout: 5000 }))?.status === 200, 15_000, 200)) targets.push({ name: 'nginx, plain', port: ngx });
    else log(`nginx did not start (${dir}/nginx.out): its row is left out`);
  }
  targets.push(
    { name: 'baton, plain', port: plain },
    { name: 'baton, h2c: true', port: h2c },
    { name: 'baton, TLS (http/1.1)', port: tlsPort, tls: true },
    { name: 'baton, proxy_protocol', port: proxy, proxy: true },
  );
  log(`${o.requests} sequential keep-alive requests per target; the upstream writes ${o.chunks} pieces ${o.gapMs} ms apart`);
  for (const t of targets) t.times = await measure(t, o);
  const med = (t) => percentile(t.times, 50);
  const base = med(targets[0]);
  const ngxRow = targets.find((t) => t.name.startsWith('nginx'));
  console.log(table(['target', 'median ms', 'p90 ms', 'worst ms', 'median / upstream', 'median / nginx'], targets.map((t) => [
    t.name, med(t).toFixed(1), percentile(t.times, 90).toFixed(1), t.times.at(-1).toFixed(1), (med(t) / base).toFixed(2), ngxRow ? (med(t) / med(ngxRow)).toFixed(2) : '-',
  ])));
  console.log('A median about 40 ms above the upstream\'s means Nagle\'s algorithm meets the client\'s delayed ACK on that listener.');
  for (const cp of stops) signal(cp.pid, 'SIGQUIT');
  for (const cp of stops) await waitExit(cp.pid, 30_000);
  fs.rmSync(dir, { recursive: true, force: true });
  upstream.close();
  return 0;
}

runMain('stream-latency', main);
