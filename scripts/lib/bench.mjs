// scripts/bench — baton vs nginx vs a bare undici proxy, same upstream, same run, ratios printed; a gzip row
// (baton's compression against nginx's gzip on); then HTTP/2 (h2load, cleartext h2c and TLS) baton vs nginx.
// Run `scripts/bench --help` for flags.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  TEXT_PAGE,
  HOST,
  REPO_DIR,
  NGINX_TEMP_PATHS,
  cleanup,
  countErrorLines,
  die,
  fmtMs,
  freePorts,
  httpGet,
  isAlive,
  log,
  makeCert,
  mkTempDir,
  nginxTest,
  parseDuration,
  parseH2load,
  parseWrk,
  percentile,
  readH2loadLog,
  runCapture,
  sleep,
  spawnTracked,
  table,
  tail,
  waitFor,
  waitPort,
  which,
  runMain,
} from './common.mjs';
import { fmtCpu, median, rssMiB, treeCpu, treeOf } from './bench-cpu.mjs';

const HELP = `usage: scripts/bench [options]

Starts one upstream (nginx, 2 workers, return 200 "hello\\n") and three proxies in front of it, each on its own
127.0.0.1 port: baton (2 workers, access log on), nginx (2 workers, upstream keepalive, buffered access log) and a
bare undici proxy (2 cluster workers, pool.stream(), no header processing). Then runs wrk against each, keep-alive
and with "Connection: close", targets alternating (A B C A B C), two rounds; reports the better round per cell.
The gzip row: GET /text (an 8 KiB HTML page from the upstream) with "Accept-Encoding: gzip", keep-alive, compressed
by baton (compression: gzip, level 5) and by nginx (gzip on, gzip_comp_level 5); the bare proxy has no such row.
HTTP/2 (default on): baton and nginx also listen for h2c (HTTP/2 with prior knowledge, cleartext) and for TLS
(h2 by ALPN, self-signed certificate made with openssl in the temp dir); h2load runs against each, alternating,
same number of rounds. The bare proxy has no HTTP/2 row.

  --duration D      length of each measured wrk run (default 10s)
  --warmup D        unmeasured wrk run per target before measuring (default 2s; 1s with --quick)
  --connections N   wrk connections (default 64)
  --threads N       wrk threads (default 2)
  --rounds N        rounds of A B C per mode (default 2)
  --quick           3s runs, 1 round-trip of warm-up: a smoke test (~1 min)
  --baton PATH      baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --node PATH       node binary for baton and the bare proxy (default: the one running this script); e.g.
                    /work/nodes/node_modules/node24/bin/node
  --keep            keep access logs and h2load per-request logs in the temp dir (deleted otherwise)
  --h2              HTTP/2 rows too (the default)
  --no-h2           HTTP/1.1 (wrk) rows only
  --h2-only         HTTP/2 (h2load) rows only
  --h2-duration D   length of each measured h2load run (default 8s; 3s with --quick)
  --h2-clients N    h2load -c (default 16)
  --h2-streams N    h2load -m, concurrent streams per connection (default 10)
  --h2-threads N    h2load -t (default 1)
  --no-upstream-kinds  skip the upstream-kind rows (below)
  -h, --help        this text

Upstream kinds (default on): the upstream nginx also serves HTTPS (HTTP/1.1) and h2c; baton (tls.ca, protocol:
http2) and nginx (proxy_pass https:// with proxy_ssl_session_reuse and proxy_ssl_verify; grpc_pass grpc:// for
HTTP/2) proxy /tls/ and /h2/ to them; wrk keep-alive against each, same rounds.`;

/** The version of the node binary the proxies run under. */
function nodeVersion(bin) {
  if (bin === process.execPath) return process.version;
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return `? (${bin})`;
  }
}

function parseArgs(argv) {
  const o = {
    duration: 10_000,
    warmup: null,
    connections: 64,
    threads: 2,
    rounds: 2,
    quick: false,
    keep: false,
    h2: true,
    h1: true,
    h2Duration: null,
    h2Clients: 16,
    h2Streams: 10,
    h2Threads: 1,
    baton: path.join(REPO_DIR, 'bin/baton'),
    node: process.execPath,
    kinds: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const v = () => inline ?? val();
    switch (flag) {
      case '--duration': o.duration = parseDuration(v()); o.durationSet = true; break;
      case '--warmup': o.warmup = parseDuration(v()); break;
      case '--connections': case '-c': o.connections = Number(v()); break;
      case '--threads': case '-t': o.threads = Number(v()); break;
      case '--rounds': o.rounds = Number(v()); break;
      case '--quick': o.quick = true; break;
      case '--keep': o.keep = true; break;
      case '--h2': o.h2 = true; break;
      case '--no-h2': o.h2 = false; break;
      case '--h2-only': o.h2 = true; o.h1 = false; break;
      case '--h2-duration': o.h2Duration = parseDuration(v()); break;
      case '--h2-clients': o.h2Clients = Number(v()); break;
      case '--h2-streams': o.h2Streams = Number(v()); break;
      case '--h2-threads': o.h2Threads = Number(v()); break;
      case '--no-upstream-kinds': o.kinds = false; break;
      case '--baton': o.baton = path.resolve(v()); break;
      case '--node': o.node = path.resolve(v()); break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (o.quick && !o.durationSet) o.duration = 3000;
  if (o.warmup === null) o.warmup = o.quick ? 1000 : 2000;
  if (o.h2Duration === null) o.h2Duration = o.quick ? 3000 : 8000;
  for (const k of ['connections', 'threads', 'rounds', 'h2Clients', 'h2Streams', 'h2Threads'])
    if (!Number.isInteger(o[k]) || o[k] < 1 || o[k] > 10_000) die(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be a positive integer`);
  if (o.h2Duration < 1000 || o.h2Duration > 600_000) die('--h2-duration must be between 1s and 10m');
  if (o.h2Clients < o.h2Threads) o.h2Threads = o.h2Clients;
  if (o.duration < 1000 || o.duration > 600_000) die('--duration must be between 1s and 10m');
  if (o.connections < o.threads) o.threads = o.connections;
  return o;
}

// ---------------------------------------------------------------------------------------------------------

function upstreamNginxConf(dir, port, kinds) {
  // kinds: {tlsPort, h2cPort, cert, key} or null: the same answer over HTTPS (HTTP/1.1) and h2c.
  const extra = kinds
    ? `
    server {
        listen ${HOST}:${kinds.tlsPort} ssl backlog=4096;
        ssl_certificate ${kinds.cert};
        ssl_certificate_key ${kinds.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { default_type text/plain; return 200 "hello\\n"; }
    }
    server {
        listen ${HOST}:${kinds.h2cPort} http2 backlog=4096;
        location / { default_type text/plain; return 200 "hello\\n"; }
    }`
    : '';
  return `# upstream for scripts/bench
daemon off;
master_process on;
worker_processes 2;
pid ${dir}/upstream-nginx.pid;
error_log ${dir}/upstream-nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${NGINX_TEMP_PATHS(dir + '/upstream-tmp')}
    server {
        listen ${HOST}:${port} backlog=4096;
        location / { default_type text/plain; return 200 "hello\\n"; }
        location = /text { default_type text/html; alias ${dir}/text.html; }
    }${extra}
}
`;
}

function proxyNginxConf(dir, port, upPort, h2, kinds) {
  // h2: {h2cPort, tlsPort, cert, key} or null. nginx 1.22: "listen ... http2" without ssl is HTTP/2 with prior
  // knowledge only (no HTTP/1.1 on that port), hence its own port; keepalive_requests also bounds HTTP/2 streams
  // per connection since 1.19.7 (a GOAWAY at the limit would stop h2load clients).
  const h2Listen = h2
    ? `
        listen ${HOST}:${h2.h2cPort} http2 backlog=4096;
        listen ${HOST}:${h2.tlsPort} ssl http2 backlog=4096;
        ssl_certificate ${h2.cert};
        ssl_certificate_key ${h2.key};
        ssl_protocols TLSv1.2 TLSv1.3;  # 1.22's default has no TLSv1.3 (baton, i.e. Node, negotiates 1.3)`
    : '';
  return `# nginx as a reverse proxy for scripts/bench
daemon off;
master_process on;
worker_processes 2;
pid ${dir}/proxy-nginx.pid;
error_log ${dir}/proxy-nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log ${dir}/proxy-nginx-access.log combined buffer=64k flush=1s;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${NGINX_TEMP_PATHS(dir + '/proxy-tmp')}
    upstream app {
        server ${HOST}:${upPort};
        keepalive 64;
        keepalive_requests 1000000;
    }${kinds ? `
    upstream app_tls {
        server ${HOST}:${kinds.tlsPort};
        keepalive 64;
        keepalive_requests 1000000;
    }
    upstream app_h2 {
        server ${HOST}:${kinds.h2cPort};
        keepalive 64;
        keepalive_requests 1000000;
    }` : ''}
    server {
        listen ${HOST}:${port} backlog=4096;${h2Listen}
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }${kinds ? `
        location /tls/ {
            proxy_pass https://app_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate ${kinds.cert};
            proxy_ssl_name localhost;  # the certificate names localhost and 127.0.0.1; nginx checks the upstream block name by default
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
        }
        location /h2/ {
            grpc_pass grpc://app_h2;
        }` : ''}
        location = /text {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            gzip on;
            gzip_comp_level 5;
            gzip_min_length 1024;
            gzip_vary on;
        }
    }
}
`;
}

function batonConf(dir, port, adminPort, upPort, h2, kinds) {
  const h2Listeners = h2
    ? `
  - listen: ${HOST}:${h2.h2cPort}
    h2c: true
  - listen: ${HOST}:${h2.tlsPort}
    tls: { cert: "${h2.cert}", key: "${h2.key}" }`
    : '';
  return `# baton for scripts/bench
pid_file: baton.pid
workers: 2
shutdown_timeout: 5s
upgrade_timeout: 60s
log: { level: info, error: baton-error.log, access: baton-access.log }
admin: { listen: ${HOST}:${adminPort} }
listeners:
  - listen: ${HOST}:${port}${h2Listeners}
compression: { algorithms: [gzip], min_size: 1k }
upstreams:
  app:
    targets: [ { url: "http://${HOST}:${upPort}" } ]
    keepalive_timeout: 4s${kinds ? `
  app_tls:
    targets: [ { url: "https://${HOST}:${kinds.tlsPort}" } ]
    tls: { ca: "${kinds.cert}" }
    keepalive_timeout: 4s
  app_h2:
    protocol: http2
    targets: [ { url: "http://${HOST}:${kinds.h2cPort}" } ]
    keepalive_timeout: 4s` : ''}
routes:
  - path: /text
    upstream: app
  - path: /
    upstream: app
    compress: false    # the other rows measure the plain proxy path${kinds ? `
  - path: /tls/
    upstream: app_tls
    compress: false
  - path: /h2/
    upstream: app_h2
    compress: false` : ''}
`;
}

/** Wait until GET / through `port` answers 200 "hello\n" (the proxy is up and reaches the upstream). */
async function waitServing(port, cp, ms, urlPath = '/') {
  return waitFor(async () => {
    if (cp && (cp.exitCode !== null || cp.signalCode !== null)) return 'exited';
    const r = await httpGet(port, urlPath, { timeout: 1000 });
    return r && r.status === 200 && r.body === 'hello\n' ? 'ok' : null;
  }, ms, 200);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();

  const wrk = which('wrk');
  const h2load = which('h2load');
  const nginx = which('nginx') || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  const missing = [opt.h1 && !wrk && 'wrk', !nginx && 'nginx', opt.h2 && !h2load && 'h2load', opt.h2 && !which('openssl') && 'openssl'].filter(Boolean);
  if (missing.length) die(`missing tools: ${missing.join(', ')} (apt-get install -y wrk nginx-light nghttp2-client openssl; or --no-h2)`);
  if (!fs.existsSync(opt.baton)) die(`baton executable not found: ${opt.baton}`);

  const dir = mkTempDir('baton-bench-');
  log(`temp dir (configs, logs, raw wrk and h2load output): ${dir}`);
  const [upPort, batonPort, adminPort, nginxPort, barePort, batonH2cPort, batonTlsPort, nginxH2cPort, nginxTlsPort, upTlsPort, upH2cPort] = await freePorts(11);
  const cert = opt.h2 || opt.kinds ? await makeCert(dir) : null;
  const kinds = opt.kinds && opt.h1 ? { tlsPort: upTlsPort, h2cPort: upH2cPort, ...cert } : null;
  const batonH2 = opt.h2 ? { h2cPort: batonH2cPort, tlsPort: batonTlsPort, ...cert } : null;
  const nginxH2 = opt.h2 ? { h2cPort: nginxH2cPort, tlsPort: nginxTlsPort, ...cert } : null;

  // ---- upstream
  const failures = [];
  const targets = [];
  fs.writeFileSync(path.join(dir, 'upstream-nginx.conf'), upstreamNginxConf(dir, upPort, kinds));
  fs.writeFileSync(path.join(dir, 'text.html'), TEXT_PAGE);
  fs.writeFileSync(path.join(dir, 'proxy-nginx.conf'), proxyNginxConf(dir, nginxPort, upPort, nginxH2, kinds));
  for (const name of ['upstream-nginx', 'proxy-nginx']) {
    const err = await nginxTest(nginx, path.join(dir, `${name}.conf`), dir);
    if (err) die(`${name}.conf does not pass nginx -t:\n${err}`);
  }
  const upstream = spawnTracked(nginx, ['-p', dir + '/', '-c', path.join(dir, 'upstream-nginx.conf'), '-e', path.join(dir, 'upstream-nginx-error.log')], {
    cwd: dir,
    stdout: path.join(dir, 'upstream-nginx.out'),
    stderr: path.join(dir, 'upstream-nginx.out'),
  });
  if (!(await waitPort(upPort, 10_000)) || (await waitServing(upPort, upstream, 5000)) !== 'ok') {
    die(`upstream nginx did not start; see ${dir}/upstream-nginx-error.log and upstream-nginx.out:\n${tail(path.join(dir, 'upstream-nginx-error.log'))}`);
  }
  log(`upstream nginx on ${HOST}:${upPort} (pid ${upstream.pid})`);

  // ---- proxies
  const starters = [
    {
      name: 'baton',
      port: batonPort,
      h2: batonH2,
      logs: ['baton.out', 'baton-error.log'],
      start() {
        fs.writeFileSync(path.join(dir, 'baton.yaml'), batonConf(dir, batonPort, adminPort, upPort, batonH2, kinds));
        return spawnTracked(opt.node, [opt.baton, '-c', path.join(dir, 'baton.yaml')], {
          cwd: dir,
          stdout: path.join(dir, 'baton.out'),
          stderr: path.join(dir, 'baton.out'),
        });
      },
    },
    {
      name: 'nginx',
      port: nginxPort,
      h2: nginxH2,
      logs: ['proxy-nginx.out', 'proxy-nginx-error.log'],
      start() {
        return spawnTracked(nginx, ['-p', dir + '/', '-c', path.join(dir, 'proxy-nginx.conf'), '-e', path.join(dir, 'proxy-nginx-error.log')], {
          cwd: dir,
          stdout: path.join(dir, 'proxy-nginx.out'),
          stderr: path.join(dir, 'proxy-nginx.out'),
        });
      },
    },
    {
      name: 'bare',
      port: barePort,
      logs: ['bare.out'],
      start() {
        return spawnTracked(opt.node, [path.join(REPO_DIR, 'scripts/lib/bare-proxy.mjs'), String(barePort), `http://${HOST}:${upPort}`, '2'], {
          cwd: dir,
          stdout: path.join(dir, 'bare.out'),
          stderr: path.join(dir, 'bare.out'),
        });
      },
    },
  ];
  cleanup.addPidFile(path.join(dir, 'baton.pid'));
  for (const s of starters) {
    if (s.name === 'bare' && !opt.h1) continue; // no HTTP/2 in the bare proxy
    const cp = s.start();
    const state = await waitServing(s.port, cp, 20_000);
    if (state === 'ok') {
      targets.push({ ...s, cp });
      log(`${s.name} on ${HOST}:${s.port} (pid ${cp.pid})`);
    } else {
      const why = state === 'exited' ? `exited (${cp.exitCode ?? cp.signalCode})` : 'did not answer 200 "hello\\n" within 20s';
      failures.push(`${s.name} failed to start: ${why}; logs: ${s.logs.map((l) => path.join(dir, l)).join(', ')}`);
      log(`ERROR ${failures.at(-1)}`);
      for (const l of s.logs) {
        const t = tail(path.join(dir, l), 8);
        if (t) process.stderr.write(`--- ${l} (last lines)\n${t}\n`);
      }
      if (cp.exitCode === null) {
        cp.kill('SIGTERM');
        await waitFor(() => cp.exitCode !== null || cp.signalCode !== null, 5000);
      }
    }
  }

  const modes = [
    { name: 'keepalive', args: [] },
    { name: 'close', args: ['-H', 'Connection: close'] },
    // Compressed responses: baton and nginx only (the bare proxy does not compress).
    { name: 'gzip', args: ['-H', 'Accept-Encoding: gzip'], path: '/text', only: ['baton', 'nginx'] },
  ];
  const inMode = (mode, name) => !mode.only || mode.only.includes(name);
  // The gzip row measures compression only if both proxies compress: check once before any load.
  for (const t of targets) {
    if (!inMode(modes[2], t.name)) continue;
    const r = await httpGet(t.port, '/text', { headers: { 'accept-encoding': 'gzip' } });
    if (!r || r.status !== 200 || r.headers['content-encoding'] !== 'gzip') {
      failures.push(`${t.name} did not answer GET /text with a gzip response (${r ? `${r.status}, content-encoding ${r.headers['content-encoding']}` : 'no answer'})`);
      log(`ERROR ${failures.at(-1)}`);
    }
  }
  const runWrk = async (t, mode, ms, label, urlPath = mode.path ?? '/') => {
    if (cleanup.stopping) die('interrupted', 130);
    const args = ['-t', String(opt.threads), '-c', String(opt.connections), '-d', `${Math.round(ms / 1000)}s`, '--timeout', '5s', '--latency', ...mode.args, `http://${HOST}:${t.port}${urlPath}`];
    const cpu0 = treeCpu(t.cp.pid);
    const r = await runCapture(wrk, args, { timeoutMs: ms + 30_000 });
    const cpu = treeCpu(t.cp.pid) - cpu0;
    fs.writeFileSync(path.join(dir, `wrk-${label}-${t.name}-${mode.name}${urlPath.replaceAll('/', '_')}.txt`), `$ wrk ${args.join(' ')}\n${r.stdout}${r.stderr}`);
    const p = parseWrk(r.stdout);
    p.cpu = cpu;
    p.cpuPer1k = p.requests ? cpu / (p.requests / 1000) : null;
    p.exit = r.code;
    p.alive = t.cp.exitCode === null && t.cp.signalCode === null;
    if (!p.ok) log(`wrk against ${t.name} (${mode.name}) produced no result: ${r.stderr.trim() || r.stdout.trim()}`);
    if (!p.alive) log(`ERROR ${t.name} is no longer running after the ${mode.name} run`);
    return p;
  };

  const loadBefore = os.loadavg()[0].toFixed(2);
  const h1Targets = opt.h1 ? targets : [];
  // HTTP/2 targets: each of baton and nginx over h2c (cleartext, prior knowledge) and over TLS (ALPN h2)
  const h2Targets = [];
  if (opt.h2) {
    for (const t of targets.filter((x) => x.h2)) {
      for (const proto of ['h2c', 'tls']) {
        const port = proto === 'h2c' ? t.h2.h2cPort : t.h2.tlsPort;
        const url = `${proto === 'h2c' ? 'http' : 'https'}://${HOST}:${port}/`;
        const h = { name: t.name, proto, url, cp: t.cp, key: `${t.name}/${proto}` };
        // smoke check: 20 requests over 1 connection must succeed with the right protocol
        const r = await runCapture(h2load, ['-n', '20', '-c', '1', '-m', '1', url], { timeoutMs: 20_000 });
        const p = parseH2load(r.stdout);
        const want = proto === 'h2c' ? 'h2c' : 'h2';
        if (p.ok && p.succeeded === 20 && p.status['2xx'] === 20 && p.proto === want) {
          h2Targets.push(h);
          log(`${t.name} ${proto} on ${HOST}:${port}: ok (${p.proto}${p.cipher ? `, ${p.tlsProtocol} ${p.cipher}` : ''})`);
        } else {
          failures.push(`${t.name} ${proto} (${url}) failed the h2load smoke check: ${p.ok ? `${p.succeeded}/20 succeeded, protocol ${p.proto}` : 'no result'}`);
          log(`ERROR ${failures.at(-1)}\n${(r.stdout + r.stderr).trim().split('\n').slice(-12).join('\n')}`);
        }
      }
    }
  }
  const h2Args = (ms) => ['-t', String(opt.h2Threads), '-c', String(opt.h2Clients), '-m', String(opt.h2Streams), '-D', String(Math.round(ms / 1000))];
  const runH2 = async (h, ms, label) => {
    if (cleanup.stopping) die('interrupted', 130);
    const logFile = path.join(dir, `h2load-${label}-${h.name}-${h.proto}.log.tsv`);
    // the same TLS 1.3 suite for both (nginx would follow the client's order, baton its own)
    const tlsArgs = h.proto === 'tls' ? ['--tls13-ciphers', 'TLS_AES_128_GCM_SHA256'] : [];
    const args = [...h2Args(ms), ...tlsArgs, ...(label === 'warmup' ? [] : ['--log-file', logFile]), h.url];
    const cpu0 = treeCpu(h.cp.pid);
    const r = await runCapture(h2load, args, { timeoutMs: ms + 30_000 });
    const cpu = treeCpu(h.cp.pid) - cpu0;
    fs.writeFileSync(path.join(dir, `h2load-${label}-${h.name}-${h.proto}.txt`), `$ h2load ${args.join(' ')}\n${r.stdout}${r.stderr}`);
    const p = parseH2load(r.stdout);
    p.cpu = cpu;
    p.cpuPer1k = p.done ? cpu / (p.done / 1000) : null;
    p.exit = r.code;
    p.alive = h.cp.exitCode === null && h.cp.signalCode === null;
    if (label !== 'warmup') {
      // h2load gives min/max/mean/sd only: the percentiles come from its per-request log (2xx/3xx streams)
      const l = readH2loadLog(logFile, { maxBad: 0 });
      p.p50 = percentile(l.lat, 50);
      p.p99 = percentile(l.lat, 99);
      p.logged = l.lines;
      if (!opt.keep) fs.rmSync(logFile, { force: true });
    }
    // In -D mode "started - done" includes the streams still in flight when the duration ends (at most -c x -m);
    // only what exceeds that is certainly lost with a connection.
    p.lostExcess = p.ok ? Math.max(0, p.started - p.done - opt.h2Clients * opt.h2Streams) : 0;
    p.errors = (p.failed ?? 0) + p.lostExcess + (p.idleClient ? 1 : 0);
    if (!p.ok) log(`h2load against ${h.key} produced no result: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`);
    if (!p.alive) log(`ERROR ${h.name} is no longer running after the ${h.proto} run`);
    return p;
  };

  const h1Runs = modes.reduce((n, m) => n + h1Targets.filter((x) => inMode(m, x.name)).length, 0) * opt.rounds;
  const h2Runs = h2Targets.length * opt.rounds;
  const estimate = h1Runs * opt.duration + h1Targets.length * Math.max(1000, opt.warmup) + h2Runs * opt.h2Duration + h2Targets.length * 1000;
  log(
    `load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${os.cpus().length} CPUs; ` +
      (h1Runs ? `${h1Runs} runs of ${opt.duration / 1000}s (wrk -t${opt.threads} -c${opt.connections}) + ${opt.warmup / 1000}s warm-up per target; ` : '') +
      (h2Runs ? `${h2Runs} runs of ${opt.h2Duration / 1000}s (h2load ${h2Args(opt.h2Duration).join(' ')}) + 1s warm-up per target; ` : '') +
      `about ${Math.round(estimate / 1000)} s of load`,
  );
  for (const t of h1Targets) await runWrk(t, modes[0], Math.max(1000, opt.warmup), 'warmup');
  // Idle RSS after the warm-up: the proxies' processes once the load has stopped (one second to settle)
  const idleRss = [];
  if (h1Targets.length) {
    await sleep(1000);
    for (const t of targets) {
      const pids = treeOf(t.cp.pid);
      idleRss.push([t.name, pids.map((pid) => `${pid}: ${rssMiB(pid)?.toFixed(1) ?? '-'} MiB`).join(', ')]);
    }
    log(`idle RSS after the warm-up: ${idleRss.map(([n, r]) => `${n} [${r}]`).join('; ')}`);
  }

  const results = new Map(); // `${target}/${mode}` -> [runs]
  for (let round = 1; round <= opt.rounds && h1Targets.length; round++) {
    for (const mode of modes) {
      for (const t of h1Targets.filter((x) => inMode(mode, x.name))) {
        const p = await runWrk(t, mode, opt.duration, `r${round}`);
        const key = `${t.name}/${mode.name}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key).push(p);
        log(
          `round ${round} ${mode.name.padEnd(9)} ${t.name.padEnd(5)} ${p.rps ?? '-'} req/s  cpu/1k ${p.cpuPer1k?.toFixed(3) ?? '-'}s  p50 ${fmtMs(p.p50)}  p99 ${fmtMs(p.p99)}` +
            (p.socketErrors || p.non2xx ? `  errors: socket ${JSON.stringify(p.socket)} non-2xx ${p.non2xx}` : ''),
        );
      }
    }
  }

  // Upstream kinds: the same client load (wrk keep-alive), the upstream leg over HTTPS or HTTP/2.
  const KINDS = [{ name: 'https-up', path: '/tls/' }, { name: 'h2-up', path: '/h2/' }];
  const kindTargets = [];
  if (kinds) {
    for (const t of targets.filter((x) => x.name !== 'bare')) {
      for (const k of KINDS) {
        const r = await waitServing(t.port, t.cp, 10_000, k.path);
        if (r === 'ok') kindTargets.push({ t, k });
        else {
          failures.push(`${t.name} does not answer 200 "hello\\n" on ${k.path} (${k.name})`);
          log(`ERROR ${failures.at(-1)}`);
        }
      }
    }
  }
  const kindResults = new Map(); // `${target}/${kind}` -> [runs]
  for (const { t, k } of kindTargets) await runWrk(t, modes[0], Math.max(1000, opt.warmup), 'warmup', k.path);
  for (let round = 1; round <= opt.rounds && kindTargets.length; round++) {
    for (const k of KINDS) {
      for (const { t } of kindTargets.filter((x) => x.k === k)) {
        const p = await runWrk(t, modes[0], opt.duration, `r${round}`, k.path);
        const key = `${t.name}/${k.name}`;
        if (!kindResults.has(key)) kindResults.set(key, []);
        kindResults.get(key).push(p);
        log(`round ${round} ${k.name.padEnd(9)} ${t.name.padEnd(5)} ${p.rps ?? '-'} req/s  cpu/1k ${p.cpuPer1k?.toFixed(3) ?? '-'}s  p50 ${fmtMs(p.p50)}  p99 ${fmtMs(p.p99)}` + (p.socketErrors || p.non2xx ? `  errors: socket ${JSON.stringify(p.socket)} non-2xx ${p.non2xx}` : ''));
      }
    }
  }

  const h2Results = new Map(); // `${target}/${proto}` -> [runs]
  for (const h of h2Targets) await runH2(h, 1000, 'warmup');
  for (let round = 1; round <= opt.rounds && h2Targets.length; round++) {
    for (const proto of ['h2c', 'tls']) {
      for (const h of h2Targets.filter((x) => x.proto === proto)) {
        const p = await runH2(h, opt.h2Duration, `r${round}`);
        if (!h2Results.has(h.key)) h2Results.set(h.key, []);
        h2Results.get(h.key).push(p);
        log(
          `round ${round} ${proto.padEnd(9)} ${h.name.padEnd(5)} ${p.rps ?? '-'} req/s  cpu/1k ${p.cpuPer1k?.toFixed(3) ?? '-'}s  p50 ${fmtMs(p.p50)}  p99 ${fmtMs(p.p99)}  mean ${fmtMs(p.reqTime?.mean)}` +
            (p.errors ? `  errors: failed ${p.failed} (errored ${p.errored}, timeout ${p.timeout}), lost ${p.lostExcess}${p.idleClient ? ', a client completed nothing' : ''}` : ''),
        );
      }
    }
  }

  // ---- report: the better (highest req/s) of the rounds for each cell
  const bestOf = (map, key) => {
    const runs = (map.get(key) || []).filter((p) => p.ok);
    if (!runs.length) return null;
    return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
  };
  const ratio = (x, y) => (x && y ? (x / y).toFixed(2) : '-');
  const cpuMedian = (map, key) => median((map.get(key) || []).filter((p) => p.ok).map((p) => p.cpuPer1k));
  const cpuRatio = (map, a, b) => ratio(cpuMedian(map, a), cpuMedian(map, b));
  const out = [''];
  const loadLine =
    `Node ${nodeVersion(opt.node)} (baton and bare); ${os.cpus().length} CPUs shared by the load generator, proxy and upstream: compare ratios, not absolute numbers. ` +
    `Load average before/after: ${loadBefore} / ${os.loadavg()[0].toFixed(2)}` +
    (Number(loadBefore) > os.cpus().length / 2 ? ' (other work was running: figures are noisy)' : '');
  if (h1Targets.length) {
    const rows = [];
    for (const mode of modes) {
      for (const t of ['baton', 'nginx', 'bare'].filter((x) => inMode(mode, x))) {
        const runs = results.get(`${t}/${mode.name}`);
        const b = bestOf(results, `${t}/${mode.name}`);
        if (!b) {
          rows.push([t, mode.name, '-', 'failed', '-', '-', '-', '-']);
          continue;
        }
        const errs = runs.reduce((n, p) => n + p.socketErrors + p.non2xx, 0);
        rows.push([t, mode.name, fmtCpu(runs.map((p) => p.cpuPer1k)), b.rps.toFixed(0), fmtMs(b.p50), fmtMs(b.p99), String(errs), runs.map((p) => (p.rps ?? 0).toFixed(0)).join(' / ')]);
      }
      const a = bestOf(results, `baton/${mode.name}`);
      for (const other of ['nginx', 'bare'].filter((x) => inMode(mode, x))) {
        const o = bestOf(results, `${other}/${mode.name}`);
        rows.push([`baton/${other}`, mode.name, cpuRatio(results, `baton/${mode.name}`, `${other}/${mode.name}`), ratio(a?.rps, o?.rps), ratio(a?.p50, o?.p50), ratio(a?.p99, o?.p99), '', '']);
      }
    }
    out.push(
      `scripts/bench — wrk -t${opt.threads} -c${opt.connections} -d${opt.duration / 1000}s --latency, GET / (upstream: nginx return 200 "hello\\n", 2 workers)`,
      `${opt.rounds} rounds per cell, targets alternating; figures are from the BETTER round (highest req/s); "runs" lists every round.`,
      `proxies: baton (2 workers, access log on), nginx 2 workers (upstream keepalive 64, buffered access log), bare undici (2 cluster workers)`,
      loadLine,
      '',
      table(['target', 'mode', 'CPU s/1000 req', 'req/s', 'p50', 'p99', 'errors', 'runs (req/s)'], rows),
      '',
      'CPU s/1000 req = user+system CPU seconds of all the proxy\'s processes (master and workers, from /proc) per 1000',
      '  requests: the median of the rounds (min-max); ratio rows: > 1 means baton spends more CPU per request.',
      'errors = wrk socket errors (connect/read/write/timeout) + non-2xx responses, summed over all rounds.',
      'gzip = GET /text (8 KiB of HTML) with Accept-Encoding: gzip, keep-alive: baton compression (gzip level 5) vs nginx gzip on (level 5).',
      'ratio rows: req/s ratio > 1 means baton is faster; p50/p99 ratio > 1 means baton is slower.',
    );
  }
  if (kindResults.size) {
    const rows = [];
    for (const k of KINDS) {
      for (const t of ['baton', 'nginx']) {
        const key = `${t}/${k.name}`;
        const runs = kindResults.get(key);
        const b = bestOf(kindResults, key);
        if (!b) {
          rows.push([t, k.name, '-', 'failed', '-', '-', '-', '-']);
          continue;
        }
        const errs = runs.reduce((n, p) => n + p.socketErrors + p.non2xx, 0);
        rows.push([t, k.name, fmtCpu(runs.map((p) => p.cpuPer1k)), b.rps.toFixed(0), fmtMs(b.p50), fmtMs(b.p99), String(errs), runs.map((p) => (p.rps ?? 0).toFixed(0)).join(' / ')]);
      }
      const a = bestOf(kindResults, `baton/${k.name}`);
      const o = bestOf(kindResults, `nginx/${k.name}`);
      rows.push(['baton/nginx', k.name, cpuRatio(kindResults, `baton/${k.name}`, `nginx/${k.name}`), ratio(a?.rps, o?.rps), ratio(a?.p50, o?.p50), ratio(a?.p99, o?.p99), '', '']);
    }
    out.push(
      '',
      `Upstream kinds — the same wrk keep-alive load, the upstream leg over HTTPS (https-up: nginx upstream "listen ssl", HTTP/1.1)`,
      `or HTTP/2 (h2-up: nginx upstream "listen http2", h2c). baton: tls.ca (verified), protocol: http2; nginx: proxy_pass https://`,
      `with proxy_ssl_session_reuse on and proxy_ssl_verify on, and grpc_pass grpc:// (nginx 1.22 has no other HTTP/2 upstream).`,
      '',
      table(['target', 'upstream', 'CPU s/1000 req', 'req/s', 'p50', 'p99', 'errors', 'runs (req/s)'], rows),
    );
  }
  if (opt.h2) {
    const rows = [];
    for (const proto of ['h2c', 'tls']) {
      for (const t of ['baton', 'nginx']) {
        const key = `${t}/${proto}`;
        const runs = h2Results.get(key);
        const b = bestOf(h2Results, key);
        if (!b) {
          rows.push([t, proto, '-', 'failed', '-', '-', '-', '-', '-']);
          continue;
        }
        const failed = runs.reduce((n, p) => n + (p.failed ?? 0), 0);
        const errored = runs.reduce((n, p) => n + (p.errored ?? 0), 0);
        const other = runs.reduce((n, p) => n + p.lostExcess + (p.idleClient ? 1 : 0), 0);
        rows.push([
          t,
          proto,
          fmtCpu(runs.map((p) => p.cpuPer1k)),
          b.rps.toFixed(0),
          fmtMs(b.p50),
          fmtMs(b.p99),
          fmtMs(b.reqTime?.mean),
          `${failed}/${errored}${other ? ` +${other}` : ''}`,
          runs.map((p) => (p.rps ?? 0).toFixed(0)).join(' / '),
        ]);
      }
      const a = bestOf(h2Results, `baton/${proto}`);
      const o = bestOf(h2Results, `nginx/${proto}`);
      rows.push(['baton/nginx', proto, cpuRatio(h2Results, `baton/${proto}`, `nginx/${proto}`), ratio(a?.rps, o?.rps), ratio(a?.p50, o?.p50), ratio(a?.p99, o?.p99), ratio(a?.reqTime?.mean, o?.reqTime?.mean), '', '']);
    }
    const tlsInfo = [...h2Results.entries()]
      .filter(([k]) => k.endsWith('/tls'))
      .map(([k, runs]) => `${k.split('/')[0]} ${runs.find((p) => p.cipher)?.tlsProtocol ?? '?'} ${runs.find((p) => p.cipher)?.cipher ?? '?'}`)
      .join(', ');
    out.push(
      ...(h1Targets.length ? [''] : []),
      `HTTP/2 — h2load ${h2Args(opt.h2Duration).join(' ')}, GET / (same upstream); h2c = cleartext with prior knowledge, tls = h2 by ALPN`,
      `${opt.rounds} rounds per cell, targets alternating; figures from the BETTER round (highest req/s). TLS: ${tlsInfo || '-'}`,
      `baton: h2c and TLS listeners of the same 2 workers; nginx: "listen ... http2" and "listen ... ssl http2" in the same server`,
      ...(h1Targets.length ? [] : [loadLine]),
      '',
      table(['target', 'proto', 'CPU s/1000 req', 'req/s', 'p50', 'p99', 'mean', 'failed/errored', 'runs (req/s)'], rows),
      '',
      'p50/p99: from h2load --log-file (per stream, 2xx/3xx only); mean: h2load "time for request" (same streams).',
      'failed/errored: h2load counts summed over all rounds; "+N" = streams lost with their connection (started - done',
      '  beyond the -c x -m still in flight at the end) plus runs where a client completed nothing (h2load counts neither).',
    );
  }
  if (idleRss.length) out.push('', 'Idle RSS after the warm-up (VmRSS per process of each proxy, the root process first):', ...idleRss.map(([n, r]) => `  ${n.padEnd(5)} ${r}`));
  process.stdout.write(out.join('\n') + '\n');

  // ---- stop everything, then report where the logs are. The proxies first, while the upstream still answers: the
  // load generators leave requests in flight when their duration ends, and an upstream stopped under them would
  // put "other side closed" errors in the proxies' logs that have nothing to do with the measurement.
  await sleep(500);
  const proxies = targets.map((t) => t.cp).filter((cp) => cp.exitCode === null && cp.signalCode === null);
  for (const cp of proxies) cp.kill('SIGTERM');
  await waitFor(() => proxies.every((cp) => cp.exitCode !== null || cp.signalCode !== null), 10_000, 100);
  await cleanup.run();
  if (!opt.keep) for (const f of ['baton-access.log', 'proxy-nginx-access.log']) fs.rmSync(path.join(dir, f), { force: true });
  for (const d of ['upstream-tmp', 'proxy-tmp']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
  const batonErrors = countErrorLines(path.join(dir, 'baton-error.log'));
  process.stdout.write(
    `\nlogs: ${dir} (baton.out, baton-error.log${opt.keep ? ', baton-access.log' : ''}, proxy-nginx-error.log, upstream-nginx-error.log` +
      `${opt.h1 ? ', bare.out, wrk-*.txt' : ''}${opt.h2 ? `, h2load-*.txt${opt.keep ? ', h2load-*.log.tsv' : ''}` : ''})\n` +
      (batonErrors.count
        ? `baton-error.log has ${batonErrors.count} warn/error lines (${batonErrors.errors} at error level), grouped:\n` +
          batonErrors.groups.slice(0, 10).map(([k, n]) => `  ${String(n).padStart(5)} x ${k}\n`).join('')
        : ''),
  );
  const anyErrors = [...results.values(), ...h2Results.values(), ...kindResults.values()].flat().some((p) => !p.ok || !p.alive);
  if (failures.length) {
    process.stdout.write(`\nFAILED: ${failures.join('\n        ')}\n`);
    return 1;
  }
  if (anyErrors) {
    process.stdout.write('\nFAILED: a wrk or h2load run produced no result or a proxy died during the run (see above)\n');
    return 1;
  }
  return 0;
}

runMain('bench', main);
