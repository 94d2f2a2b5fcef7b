// scripts/attack — denial-of-service attacks against baton and nginx, side by side (issue 16): what each attack
// costs the proxy and how long ordinary requests suffer. Run `scripts/attack --help` for flags.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import {
  HOST,
  NGINX_TEMP_PATHS,
  REPO_DIR,
  cleanup,
  descendantsOf,
  die,
  fmtMs,
  freePorts,
  httpGet,
  isAlive,
  log,
  mkTempDir,
  nginxTest,
  parseDuration,
  percentile,
  readPidFile,
  spawnTracked,
  table,
  tail,
  waitFor,
  which,
  runMain,
} from './common.mjs';

const ATTACKS = {
  1: { name: 'ws', title: '1. WebSocket handshakes with extra bytes, upstream answers 200 (not 101)' },
  3: { name: 'rapid-reset', title: '3. HTTP/2 rapid reset (HEADERS + RST_STREAM) with reconnects, h2c' },
  4: { name: 'slow-streams', title: '4. 2 HTTP/2 connections x 3000 slow streams, h2c' },
  5: { name: 'slow-uploads', title: '5. 1200 slow request-body uploads (1 KiB/s each)' },
};

const HELP = `usage: scripts/attack [options]

Starts an upstream (scripts/lib/attack-upstream.mjs: counts its TCP connections; /slow answers after --slow) and,
for each attack and each proxy, a fresh proxy in front of it: baton (2 workers, an HTTP/1.1 and an h2c listener,
access log on) and nginx (2 workers, the same two ports, upstream keepalive). The attacker runs in its own
process (scripts/lib/attack-client.mjs) for --duration:
${Object.entries(ATTACKS).map(([k, a]) => `  ${a.title}`).join('\n')}
Before each attack, 400 ordinary requests over HTTP/1.1 and 400 over h2c warm the proxy up. Meanwhile a prober sends an ordinary GET / (new connection, HTTP/1.1) every 200 ms. Printed per attack and
proxy: the probes during the attack (answered, failed, median and slowest), the outage after it (from the end of
the attack to the first ordinary request answered again; probes every 50 ms), the upstream connections opened,
the CPU seconds of the proxy's processes (/proc: utime + stime, children included), their RSS before, at the
peak and --settle after the attack, their open file descriptors before and after, and the log bytes written.

  --attacks LIST    of 1, 3, 4, 5 (default all)
  --against LIST    of baton, nginx (default both; nginx only where installed)
  --duration D      length of each attack (default 5s)
  --settle D        wait after the attack before the "after" figures (default 5s)
  --slow D          how long the upstream holds /slow (default 10s)
  --baton PATH      baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --limits YAML     extra keys of baton's limits section, e.g. 'request_buffering: off' (to compare defenses)
  --upstream YAML   extra keys of baton's upstream, e.g. 'queue: { size: 100, timeout: 1s }'
  --target YAML     extra keys of baton's target, e.g. 'max_connections: 256'
  --keep            keep the temp dir (configs, logs)
  -h, --help        this text`;

function parseArgs(argv) {
  const o = { attacks: ['1', '3', '4', '5'], against: ['baton', 'nginx'], duration: 5000, settle: 5000, slow: 10_000, baton: path.join(REPO_DIR, 'bin/baton'), keep: false, limits: '', upstream: '', target: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    switch (a) {
      case '--attacks': o.attacks = val().split(','); break;
      case '--against': o.against = val().split(','); break;
      case '--duration': o.duration = parseDuration(val()); break;
      case '--settle': o.settle = parseDuration(val()); break;
      case '--slow': o.slow = parseDuration(val()); break;
      case '--baton': o.baton = path.resolve(val()); break;
      case '--keep': o.keep = true; break;
      case '--limits': o.limits = val(); break;
      case '--upstream': o.upstream = val(); break;
      case '--target': o.target = val(); break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  for (const k of o.attacks) if (!ATTACKS[k]) die(`unknown attack ${k} (1, 3, 4, 5)`);
  for (const t of o.against) if (t !== 'baton' && t !== 'nginx') die(`unknown proxy ${t}`);
  if (o.duration < 500 || o.duration > 120_000) die('--duration must be between 500ms and 2m');
  return o;
}

// ---- /proc ------------------------------------------------------------------------------------------------------

const TICK = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux
const MiB = (kib) => (kib === null ? '-' : (kib / 1024).toFixed(0));

function rssKiB(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return 0;
  }
}

/** utime + stime + cutime + cstime, in ticks (exited children that were waited for are in their parent's c*). */
function cpuTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

function fds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The proxy's processes now: its master and every descendant. */
function processes(master) {
  return [master, ...descendantsOf([master])].filter(isAlive);
}

function sample(master) {
  const pids = processes(master);
  return {
    rss: pids.reduce((n, p) => n + rssKiB(p), 0),
    fds: pids.reduce((n, p) => n + fds(p), 0),
    // Workers that exited and were reaped count in the master's cutime/cstime.
    cpu: pids.reduce((n, p) => n + cpuTicks(p), 0),
  };
}

function logBytes(files) {
  return files.reduce((n, f) => {
    try {
      return n + fs.statSync(f).size;
    } catch {
      return n;
    }
  }, 0);
}

// ---- the proxies -----------------------------------------------------------------------------------------------

function batonConf(ports, opt) {
  return `# baton for scripts/attack
pid_file: baton.pid
workers: 2
shutdown_timeout: 5s
log: { level: info, error: baton-error.log, access: baton-access.log }
admin: { listen: "${HOST}:${ports.admin}" }
${opt.limits ? `limits: { ${opt.limits} }\n` : ''}listeners:
  - listen: ${HOST}:${ports.h1}
  - listen: ${HOST}:${ports.h2c}
    h2c: true
upstreams:
  app:
    targets: [{ url: "http://${HOST}:${ports.up}"${opt.target ? `, ${opt.target}` : ''} }]
${opt.upstream ? `    ${opt.upstream}\n` : ''}routes:
  - path: /
    upstream: app
`;
}

function nginxConf(dir, ports) {
  return `# nginx for scripts/attack
daemon off;
master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log ${dir}/nginx-access.log combined buffer=64k flush=1s;
${NGINX_TEMP_PATHS(dir + '/nginx-tmp')}
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream app {
        server ${HOST}:${ports.up};
        keepalive 64;
    }
    server {
        listen ${HOST}:${ports.h1} backlog=4096;
        listen ${HOST}:${ports.h2c} http2 backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
    }
}
`;
}

async function startProxy(name, opt, dir, ports, nginx) {
  const sub = path.join(dir, `${name}-${Date.now()}`);
  fs.mkdirSync(sub, { mode: 0o755 });
  let cp;
  let pidFile;
  let logs;
  if (name === 'baton') {
    fs.writeFileSync(path.join(sub, 'baton.yaml'), batonConf(ports, opt));
    cp = spawnTracked(process.execPath, [opt.baton, '-c', path.join(sub, 'baton.yaml')], { cwd: sub, stdout: path.join(sub, 'baton.out'), stderr: path.join(sub, 'baton.out') });
    pidFile = path.join(sub, 'baton.pid');
    logs = ['baton-error.log', 'baton-access.log', 'baton.out'].map((f) => path.join(sub, f));
  } else {
    const conf = path.join(sub, 'nginx.conf');
    fs.writeFileSync(conf, nginxConf(sub, ports));
    const err = await nginxTest(nginx, conf, sub);
    if (err) die(`nginx.conf does not pass nginx -t:\n${err}`);
    cp = spawnTracked(nginx, ['-p', sub + '/', '-c', conf, '-e', path.join(sub, 'nginx-error.log')], { cwd: sub, stdout: path.join(sub, 'nginx.out'), stderr: path.join(sub, 'nginx.out') });
    pidFile = path.join(sub, 'nginx.pid');
    logs = ['nginx-error.log', 'nginx-access.log'].map((f) => path.join(sub, f));
  }
  cleanup.addPidFile(pidFile);
  const ok = await waitFor(async () => {
    if (cp.exitCode !== null) return 'exited';
    return (await httpGet(ports.h1, '/', { timeout: 1000 }))?.status === 200 ? 'ok' : null;
  }, 20_000, 100);
  if (ok !== 'ok') die(`${name} did not start: ${tail(logs[0])}${tail(logs.at(-1))}`);
  const master = await waitFor(() => readPidFile(pidFile), 10_000, 50);
  // Let the workers settle after start-up before "before".
  await new Promise((r) => setTimeout(r, 1000));
  return { cp, master, logs, dir: sub };
}

async function stopProxy(p) {
  p.cp.kill('SIGTERM');
  await waitFor(() => p.cp.exitCode !== null || p.cp.signalCode !== null, 10_000, 50);
  for (const pid of processes(p.master)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/**
 * Ordinary traffic before "before" (HTTP/1.1 and h2c), so that the figures compare a proxy that has served
 * requests (code compiled, upstream connections pooled) with itself, not with one that just started.
 */
async function warmUp(ports, n = 400) {
  const h1 = Array.from({ length: 8 }, async (_, k) => {
    for (let i = k; i < n; i += 8) await httpGet(ports.h1, '/', { timeout: 10_000 });
  });
  const h2 = new Promise((resolve) => {
    const session = http2.connect(`http://${HOST}:${ports.h2c}`);
    session.on('error', () => resolve());
    let done = 0;
    for (let i = 0; i < n; i++) {
      const req = session.request({ ':path': '/' });
      req.on('error', () => {});
      req.resume();
      req.on('close', () => { if (++done === n) { session.close(); resolve(); } });
    }
  });
  await Promise.all([...h1, h2]);
}

// ---- one attack against one proxy -------------------------------------------------------------------------------

async function run(opt, attack, name, dir, ports, nginx, upstream) {
  const proxy = await startProxy(name, opt, dir, ports, nginx);
  await warmUp(ports);
  await new Promise((r) => setTimeout(r, 1000));
  const upCount = () => new Promise((r) => { upstream.once('message', r); upstream.send('count'); });
  const before = { ...sample(proxy.master), up: (await upCount()).connections, logs: logBytes(proxy.logs) };
  let peak = before.rss;
  const sampler = setInterval(() => { peak = Math.max(peak, sample(proxy.master).rss); }, 100);

  // Ordinary requests during the attack, every 200 ms.
  const probes = [];
  let attacking = true;
  const prober = (async () => {
    const pending = [];
    while (attacking) {
      const t0 = Date.now();
      pending.push(httpGet(ports.h1, '/', { timeout: 10_000 }).then((r) => probes.push({ ok: r?.status === 200, ms: Date.now() - t0 })));
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(pending);
  })();

  const client = fork(path.join(REPO_DIR, 'scripts/lib/attack-client.mjs'), [ATTACKS[attack].name, String(ports.h1), String(ports.h2c), String(opt.duration)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.addChild(client);
  const stats = await new Promise((resolve) => {
    client.once('message', resolve);
    client.once('exit', () => resolve(null));
  });
  const ended = Date.now();
  attacking = false;

  // The outage: from the end of the attack to the first ordinary request answered; a new probe every 50 ms.
  let recovered = null;
  const tries = [];
  for (let i = 0; recovered === null && Date.now() - ended < 60_000; i++) {
    tries.push(httpGet(ports.h1, '/', { timeout: 30_000 }).then((r) => { if (r?.status === 200 && recovered === null) recovered = Date.now() - ended; }));
    await new Promise((r) => setTimeout(r, 50));
  }
  await prober;
  await new Promise((r) => setTimeout(r, opt.settle));
  clearInterval(sampler);
  const after = { ...sample(proxy.master), up: (await upCount()).connections, logs: logBytes(proxy.logs) };
  const alive = proxy.cp.exitCode === null;
  await stopProxy(proxy);
  await Promise.race([Promise.all(tries), new Promise((r) => setTimeout(r, 1000))]);

  const lat = probes.filter((p) => p.ok).map((p) => p.ms).sort((a, b) => a - b);
  return {
    name,
    alive,
    probes: `${lat.length}/${probes.length}`,
    p50: percentile(lat, 50),
    max: lat.length ? lat.at(-1) : null,
    outage: recovered,
    upstream: after.up - before.up,
    cpu: (after.cpu - before.cpu) / TICK,
    rss: [before.rss, peak, after.rss],
    fds: [before.fds, after.fds],
    logs: after.logs - before.logs,
    stats,
  };
}

function statsLine(s) {
  if (!s) return 'the attacker reported nothing';
  const goaway = Object.entries(s.goaway).map(([code, n]) => `${n}x code ${code}`).join(', ');
  return `connections ${s.connections}, sent ${s.sent}, answered ${s.answered}, refused ${s.refused}, errors ${s.errors}${goaway ? `, GOAWAY ${goaway}` : ''}`;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const nginx = which('nginx') || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  if (!nginx && opt.against.includes('nginx')) {
    log('nginx is not installed: baton only');
    opt.against = opt.against.filter((t) => t !== 'nginx');
  }
  const dir = mkTempDir('baton-attack-');
  if (!opt.keep) cleanup.addHook(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [up, h1, h2c, admin] = await freePorts(4);
  const ports = { up, h1, h2c, admin };
  const upstream = fork(path.join(REPO_DIR, 'scripts/lib/attack-upstream.mjs'), [String(up), String(opt.slow)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.addChild(upstream);
  const ready = await Promise.race([new Promise((r) => upstream.once('message', r)), new Promise((r) => setTimeout(r, 10_000))]);
  if (ready !== 'ready') die('the upstream did not start');
  log(`Node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; temp dir ${dir}`);

  let out = `scripts/attack — ${opt.duration / 1000} s per attack, figures ${opt.settle / 1000} s after it; Node ${process.version}; baton ${opt.baton}\n`;
  for (const attack of opt.attacks) {
    const rows = [];
    const notes = [];
    for (const name of opt.against) {
      log(`attack ${ATTACKS[attack].title} against ${name}`);
      const r = await run(opt, attack, name, dir, ports, nginx, upstream);
      rows.push([
        r.name + (r.alive ? '' : ' (DIED)'),
        r.probes, fmtMs(r.p50), fmtMs(r.max),
        r.outage === null ? '> 60s' : fmtMs(r.outage),
        r.upstream, r.cpu.toFixed(1),
        r.rss.map(MiB).join(' / '),
        r.fds.join(' / '),
        (r.logs / 1048576).toFixed(1),
      ]);
      notes.push(`  ${name}: ${statsLine(r.stats)}`);
      log(`${name}: outage ${r.outage === null ? '> 60 s' : fmtMs(r.outage)}, upstream connections ${r.upstream}, CPU ${r.cpu.toFixed(1)} s, RSS ${r.rss.map(MiB).join('/')} MiB`);
    }
    out += `\n${ATTACKS[attack].title}\n`;
    out += table(['proxy', 'probes ok', 'p50', 'slowest', 'outage after', 'upstream conns', 'CPU s', 'RSS MiB before/peak/after', 'fds before/after', 'log MiB'], rows) + '\n';
    out += `attacker:\n${notes.join('\n')}\n`;
  }
  out += '\nprobes ok: ordinary GET / during the attack, answered 200 / sent (one every 200 ms, 10 s timeout); outage after: end of the attack to the first one answered again.\n';
  process.stdout.write('\n' + out);
  return 0;
}

runMain('attack', main);
