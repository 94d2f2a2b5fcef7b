// scripts/bench — baton vs nginx vs a bare undici proxy, same upstream, same run, ratios printed.
// Run `scripts/bench --help` for flags.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
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
  mkTempDir,
  nginxTest,
  parseDuration,
  parseWrk,
  runCapture,
  sleep,
  spawnTracked,
  table,
  tail,
  waitFor,
  waitPort,
  which,
} from './common.mjs';

const HELP = `usage: scripts/bench [options]

Starts one upstream (nginx, 2 workers, return 200 "hello\\n") and three proxies in front of it, each on its own
127.0.0.1 port: baton (2 workers, access log on), nginx (2 workers, upstream keepalive, buffered access log) and a
bare undici proxy (2 cluster workers, pool.stream(), no header processing). Then runs wrk against each, keep-alive
and with "Connection: close", targets alternating (A B C A B C), two rounds; reports the better round per cell.

  --duration D      length of each measured wrk run (default 10s)
  --warmup D        unmeasured wrk run per target before measuring (default 2s; 1s with --quick)
  --connections N   wrk connections (default 64)
  --threads N       wrk threads (default 2)
  --rounds N        rounds of A B C per mode (default 2)
  --quick           3s runs, 1 round-trip of warm-up: a smoke test (~1 min)
  --baton PATH      baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --keep            keep access logs in the temp dir (they are deleted otherwise; other logs are kept)
  --h2              reserved: HTTP/2 (h2load) is not implemented in baton yet; parsed and ignored
  -h, --help        this text`;

function parseArgs(argv) {
  const o = {
    duration: 10_000,
    warmup: null,
    connections: 64,
    threads: 2,
    rounds: 2,
    quick: false,
    keep: false,
    h2: false,
    baton: path.join(REPO_DIR, 'bin/baton'),
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
      case '--baton': o.baton = path.resolve(v()); break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (o.quick && !o.durationSet) o.duration = 3000;
  if (o.warmup === null) o.warmup = o.quick ? 1000 : 2000;
  for (const k of ['connections', 'threads', 'rounds'])
    if (!Number.isInteger(o[k]) || o[k] < 1 || o[k] > 10_000) die(`--${k} must be a positive integer`);
  if (o.duration < 1000 || o.duration > 600_000) die('--duration must be between 1s and 10m');
  if (o.connections < o.threads) o.threads = o.connections;
  return o;
}

// ---------------------------------------------------------------------------------------------------------

function upstreamNginxConf(dir, port) {
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
    }
}
`;
}

function proxyNginxConf(dir, port, upPort) {
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
    }
    server {
        listen ${HOST}:${port} backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;
}

function batonConf(dir, port, adminPort, upPort) {
  return `# baton for scripts/bench
pid_file: baton.pid
workers: 2
shutdown_timeout: 5s
upgrade_timeout: 60s
log: { level: info, error: baton-error.log, access: baton-access.log }
admin: { listen: ${HOST}:${adminPort} }
listeners:
  - listen: ${HOST}:${port}
upstreams:
  app:
    targets: [ { url: "http://${HOST}:${upPort}" } ]
    keepalive_timeout: 4s
routes:
  - path: /
    upstream: app
`;
}

/** Wait until GET / through `port` answers 200 "hello\n" (the proxy is up and reaches the upstream). */
async function waitServing(port, cp, ms) {
  return waitFor(async () => {
    if (cp && (cp.exitCode !== null || cp.signalCode !== null)) return 'exited';
    const r = await httpGet(port, '/', { timeout: 1000 });
    return r && r.status === 200 && r.body === 'hello\n' ? 'ok' : null;
  }, ms, 200);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  if (opt.h2) log('note: --h2 is reserved; baton has no HTTP/2 yet (a later issue), so it is ignored in this run');

  const wrk = which('wrk');
  const nginx = which('nginx') || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  const missing = [!wrk && 'wrk', !nginx && 'nginx'].filter(Boolean);
  if (missing.length) die(`missing tools: ${missing.join(', ')} (apt-get install -y wrk nginx-light)`);
  if (!fs.existsSync(opt.baton)) die(`baton executable not found: ${opt.baton}`);

  const dir = mkTempDir('baton-bench-');
  log(`temp dir (configs, logs, raw wrk output): ${dir}`);
  const [upPort, batonPort, adminPort, nginxPort, barePort] = await freePorts(5);

  // ---- upstream
  const failures = [];
  const targets = [];
  fs.writeFileSync(path.join(dir, 'upstream-nginx.conf'), upstreamNginxConf(dir, upPort));
  fs.writeFileSync(path.join(dir, 'proxy-nginx.conf'), proxyNginxConf(dir, nginxPort, upPort));
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
      logs: ['baton.out', 'baton-error.log'],
      start() {
        fs.writeFileSync(path.join(dir, 'baton.yaml'), batonConf(dir, batonPort, adminPort, upPort));
        return spawnTracked(process.execPath, [opt.baton, '-c', path.join(dir, 'baton.yaml')], {
          cwd: dir,
          stdout: path.join(dir, 'baton.out'),
          stderr: path.join(dir, 'baton.out'),
        });
      },
    },
    {
      name: 'nginx',
      port: nginxPort,
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
        return spawnTracked(process.execPath, [path.join(REPO_DIR, 'scripts/lib/bare-proxy.mjs'), String(barePort), `http://${HOST}:${upPort}`, '2'], {
          cwd: dir,
          stdout: path.join(dir, 'bare.out'),
          stderr: path.join(dir, 'bare.out'),
        });
      },
    },
  ];
  cleanup.addPidFile(path.join(dir, 'baton.pid'));
  for (const s of starters) {
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
  ];
  const runWrk = async (t, mode, ms, label) => {
    if (cleanup.stopping) die('interrupted', 130);
    const args = ['-t', String(opt.threads), '-c', String(opt.connections), '-d', `${Math.round(ms / 1000)}s`, '--timeout', '5s', '--latency', ...mode.args, `http://${HOST}:${t.port}/`];
    const r = await runCapture(wrk, args, { timeoutMs: ms + 30_000 });
    fs.writeFileSync(path.join(dir, `wrk-${label}-${t.name}-${mode.name}.txt`), `$ wrk ${args.join(' ')}\n${r.stdout}${r.stderr}`);
    const p = parseWrk(r.stdout);
    p.exit = r.code;
    p.alive = t.cp.exitCode === null && t.cp.signalCode === null;
    if (!p.ok) log(`wrk against ${t.name} (${mode.name}) produced no result: ${r.stderr.trim() || r.stdout.trim()}`);
    if (!p.alive) log(`ERROR ${t.name} is no longer running after the ${mode.name} run`);
    return p;
  };

  const loadBefore = os.loadavg()[0].toFixed(2);
  const totalRuns = targets.length * modes.length * opt.rounds;
  log(
    `load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${os.cpus().length} CPUs; ` +
      `${totalRuns} runs of ${opt.duration / 1000}s (wrk -t${opt.threads} -c${opt.connections}) + ${opt.warmup / 1000}s warm-up per target`,
  );
  for (const t of targets) await runWrk(t, modes[0], Math.max(1000, opt.warmup), 'warmup');

  const results = new Map(); // `${target}/${mode}` -> [runs]
  for (let round = 1; round <= opt.rounds; round++) {
    for (const mode of modes) {
      for (const t of targets) {
        const p = await runWrk(t, mode, opt.duration, `r${round}`);
        const key = `${t.name}/${mode.name}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key).push(p);
        log(
          `round ${round} ${mode.name.padEnd(9)} ${t.name.padEnd(5)} ${p.rps ?? '-'} req/s  p50 ${fmtMs(p.p50)}  p99 ${fmtMs(p.p99)}` +
            (p.socketErrors || p.non2xx ? `  errors: socket ${JSON.stringify(p.socket)} non-2xx ${p.non2xx}` : ''),
        );
      }
    }
  }

  // ---- report: the better (highest req/s) of the rounds for each cell
  const best = (key) => {
    const runs = (results.get(key) || []).filter((p) => p.ok);
    if (!runs.length) return null;
    return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
  };
  const rows = [];
  for (const mode of modes) {
    for (const t of ['baton', 'nginx', 'bare']) {
      const runs = results.get(`${t}/${mode.name}`);
      const b = best(`${t}/${mode.name}`);
      if (!b) {
        rows.push([t, mode.name, 'failed', '-', '-', '-', '-']);
        continue;
      }
      const errs = runs.reduce((n, p) => n + p.socketErrors + p.non2xx, 0);
      rows.push([t, mode.name, b.rps.toFixed(0), fmtMs(b.p50), fmtMs(b.p99), String(errs), runs.map((p) => (p.rps ?? 0).toFixed(0)).join(' / ')]);
    }
    const a = best(`baton/${mode.name}`);
    for (const other of ['nginx', 'bare']) {
      const o = best(`${other}/${mode.name}`);
      const ratio = (x, y) => (x && y ? (x / y).toFixed(2) : '-');
      rows.push([`baton/${other}`, mode.name, ratio(a?.rps, o?.rps), ratio(a?.p50, o?.p50), ratio(a?.p99, o?.p99), '', '']);
    }
  }
  const out = [
    '',
    `scripts/bench — wrk -t${opt.threads} -c${opt.connections} -d${opt.duration / 1000}s --latency, GET / (upstream: nginx return 200 "hello\\n", 2 workers)`,
    `${opt.rounds} rounds per cell, targets alternating; figures are from the BETTER round (highest req/s); "runs" lists every round.`,
    `proxies: baton (2 workers, access log on), nginx 2 workers (upstream keepalive 64, buffered access log), bare undici (2 cluster workers)`,
    `${os.cpus().length} CPUs shared by wrk, proxy and upstream: compare ratios, not absolute numbers. ` +
      `Load average before/after: ${loadBefore} / ${os.loadavg()[0].toFixed(2)}` +
      (Number(loadBefore) > os.cpus().length / 2 ? ' (other work was running: figures are noisy)' : ''),
    '',
    table(['target', 'mode', 'req/s', 'p50', 'p99', 'errors', 'runs (req/s)'], rows),
    '',
    'errors = wrk socket errors (connect/read/write/timeout) + non-2xx responses, summed over all rounds.',
    'ratio rows: req/s ratio > 1 means baton is faster; p50/p99 ratio > 1 means baton is slower.',
  ];
  if (opt.h2) out.push('--h2: ignored (HTTP/2 not implemented in baton yet).');
  process.stdout.write(out.join('\n') + '\n');

  // ---- stop everything, then report where the logs are
  await cleanup.run();
  if (!opt.keep) for (const f of ['baton-access.log', 'proxy-nginx-access.log']) fs.rmSync(path.join(dir, f), { force: true });
  for (const d of ['upstream-tmp', 'proxy-tmp']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
  const batonErrors = countErrorLines(path.join(dir, 'baton-error.log'));
  process.stdout.write(
    `\nlogs: ${dir} (baton.out, baton-error.log${opt.keep ? ', baton-access.log' : ''}, proxy-nginx-error.log, upstream-nginx-error.log, bare.out, wrk-*.txt)\n` +
      (batonErrors.count
        ? `baton-error.log has ${batonErrors.count} warn/error lines (${batonErrors.errors} at error level), grouped:\n` +
          batonErrors.groups.slice(0, 10).map(([k, n]) => `  ${String(n).padStart(5)} x ${k}\n`).join('')
        : ''),
  );
  const anyErrors = [...results.values()].flat().some((p) => !p.ok || !p.alive);
  if (failures.length) {
    process.stdout.write(`\nFAILED: ${failures.join('\n        ')}\n`);
    return 1;
  }
  if (anyErrors) {
    process.stdout.write('\nFAILED: a wrk run produced no result or a proxy died during the run (see above)\n');
    return 1;
  }
  return 0;
}

main().then(
  async (code) => {
    await cleanup.run();
    process.exit(code);
  },
  async (err) => {
    process.stderr.write(`bench: ${err.exitCode ? err.message : err.stack}\n`);
    await cleanup.run();
    process.exit(err.exitCode || 1);
  },
);
