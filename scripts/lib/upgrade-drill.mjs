// scripts/upgrade-drill — sustained load through real clients across repeated USR2 -> WINCH -> QUIT upgrades and
// HUP reloads, counting every failure. `scripts/upgrade-drill --help` for flags.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import {
  HOST,
  REPO_DIR,
  NGINX_TEMP_PATHS,
  childrenOf,
  cleanup,
  countErrorLines,
  die,
  fmtMs,
  freePorts,
  httpGet,
  httpJson,
  isAlive,
  log,
  mkTempDir,
  nginxTest,
  parseDuration,
  parseWrk,
  readPidFile,
  runCapture,
  signal,
  sleep,
  spawnTracked,
  table,
  tail,
  waitExit,
  waitFor,
  waitStopAccepting,
  which,
} from './common.mjs';

const HELP = `usage: scripts/upgrade-drill [options]

Starts an upstream (Node: / at once, /slow after 2 s, POST /upload echoing the byte count, /ws WebSocket echo),
a proxy in front of it, and real clients for the whole run: wrk keep-alive (-c32), wrk "Connection: close" (-c8),
~10 /slow requests always in flight, POST uploads of 256 KiB, WebSocket connections sending every 200 ms.
Then N upgrades (bump the version of a temp copy of the package; USR2; wait for the new master and its
/status version; WINCH the old one; wait for its workers to leave; QUIT it) and N HUP reloads (config alternating
between two variants, workers 2 <-> 3). Prints requests, failures and p99 per client; exits 1 on any failure.

  --cycles N            USR2 -> WINCH -> QUIT upgrades (default 5)
  --reloads N           HUP reloads (default 5)
  --against baton|nginx the proxy under test (default baton); nginx re-execs its own binary on USR2
  --baton-src DIR       package to copy (bin/, dist/, package.json, node_modules link) (default ${REPO_DIR})
  --shutdown-timeout D  proxy's hard drain limit (default 30s; nginx: worker_shutdown_timeout)
  --warm D              load before the first upgrade (default 3s)
  --slow N --uploaders N --ws N   client counts (defaults 10, 2, 4)
  --keep                keep the temp dir (it is kept anyway when something failed)
  --h2                  reserved: HTTP/2 (h2load) comes with a later issue; parsed and ignored
  -h, --help            this text`;

function parseArgs(argv) {
  const o = {
    cycles: 5,
    reloads: 5,
    against: 'baton',
    batonSrc: REPO_DIR,
    shutdownTimeout: 30_000,
    warm: 3000,
    slow: 10,
    uploaders: 2,
    ws: 4,
    keep: false,
    h2: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const v = () => {
      if (inline !== null) return inline;
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    const int = (name, max) => {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 0 || n > max) die(`${name} must be an integer 0..${max}`);
      return n;
    };
    switch (flag) {
      case '--cycles': o.cycles = int('--cycles', 100); break;
      case '--reloads': o.reloads = int('--reloads', 100); break;
      case '--against': o.against = v(); break;
      case '--baton-src': o.batonSrc = path.resolve(v()); break;
      case '--shutdown-timeout': o.shutdownTimeout = parseDuration(v()); break;
      case '--warm': o.warm = parseDuration(v()); break;
      case '--slow': o.slow = int('--slow', 200); break;
      case '--uploaders': o.uploaders = int('--uploaders', 50); break;
      case '--ws': o.ws = int('--ws', 100); break;
      case '--keep': o.keep = true; break;
      case '--h2': o.h2 = true; break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (!['baton', 'nginx'].includes(o.against)) die('--against must be baton or nginx');
  if (o.shutdownTimeout < 1000 || o.shutdownTimeout > 600_000) die('--shutdown-timeout must be between 1s and 10m');
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// timeline: every step and every failure with its time, so failures can be matched to what was happening

const T0 = Date.now();
const rel = (t) => `+${((t - T0) / 1000).toFixed(1)}s`;
const events = []; // {t, what}
function event(what) {
  if (cleanup.stopping) die('interrupted', 130);
  events.push({ t: Date.now(), what });
  log(`${rel(Date.now())} ${what}`);
}
const procedureFailures = []; // {t, what}
function procFail(what) {
  if (cleanup.stopping) die('interrupted', 130);
  procedureFailures.push({ t: Date.now(), what });
  log(`${rel(Date.now())} PROCEDURE FAILURE: ${what}`);
}

// ---------------------------------------------------------------------------------------------------------
// baton

function batonConfig({ port, adminPort, upPort, workers, variant, shutdownTimeout }) {
  const extra =
    variant === 'B'
      ? `  - path: /drill-variant-b
    return: { status: 200, body: "b\\n" }
`
      : '';
  return `# scripts/upgrade-drill, variant ${variant}
pid_file: baton.pid
workers: ${workers}
shutdown_timeout: ${Math.round(shutdownTimeout / 1000)}s
upgrade_timeout: 60s
log: { level: info, error: error.log, access: access.log }
admin: { listen: ${HOST}:${adminPort} }
listeners:
  - listen: ${HOST}:${port}
upstreams:
  app:
    targets: [ { url: "http://${HOST}:${upPort}" } ]
    keepalive_timeout: 4s
routes:
${extra}  - path: /
    upstream: app
`;
}

function writeAtomic(file, text) {
  fs.writeFileSync(file + '.tmp', text);
  fs.renameSync(file + '.tmp', file);
}

function makeBaton(opt, dir, ports) {
  const pkg = path.join(dir, 'pkg');
  const conf = path.join(dir, 'baton.yaml');
  const pidFile = path.join(dir, 'baton.pid');
  const oldbin = pidFile + '.oldbin';
  let pkgJson;
  const variants = {
    A: { workers: 2, variant: 'A' },
    B: { workers: 3, variant: 'B' },
  };
  const confText = (v) => batonConfig({ ...ports, ...variants[v], shutdownTimeout: opt.shutdownTimeout });
  const status = () => httpJson(ports.adminPort, '/status', { timeout: 2000 });
  const genOf = (s) => (s && s.generation !== null && s.generation !== undefined ? (typeof s.generation === 'object' ? s.generation.id ?? JSON.stringify(s.generation) : s.generation) : null);

  return {
    name: 'baton',
    errorLog: path.join(dir, 'error.log'),
    logs: ['baton.out', 'error.log', 'access.log'],
    port: ports.port,
    masterPid: () => readPidFile(pidFile),

    async start() {
      for (const part of ['bin', 'dist', 'package.json'])
        if (!fs.existsSync(path.join(opt.batonSrc, part))) die(`${opt.batonSrc}/${part} is missing (run "npx tsc -p ." first)`);
      fs.mkdirSync(pkg);
      fs.cpSync(path.join(opt.batonSrc, 'bin'), path.join(pkg, 'bin'), { recursive: true });
      fs.cpSync(path.join(opt.batonSrc, 'dist'), path.join(pkg, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(opt.batonSrc, 'package.json'), path.join(pkg, 'package.json'));
      fs.symlinkSync(path.join(opt.batonSrc, 'node_modules'), path.join(pkg, 'node_modules'));
      pkgJson = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
      this.baseVersion = pkgJson.version;
      writeAtomic(conf, confText('A'));
      cleanup.addPidFile(pidFile);
      cleanup.addPidFile(oldbin);
      const cp = spawnTracked(process.execPath, [path.join(pkg, 'bin/baton'), '-c', conf], {
        cwd: dir,
        stdout: path.join(dir, 'baton.out'),
        stderr: path.join(dir, 'baton.out'),
      });
      const ok = await waitFor(async () => {
        if (cp.exitCode !== null || cp.signalCode !== null) return 'exited';
        const pid = readPidFile(pidFile);
        const s = await status();
        const r = await httpGet(ports.port, '/', { timeout: 1000 });
        return pid && s && s.pid === pid && r?.status === 200 && r.body === 'ok\n' ? 'ok' : null;
      }, 30_000, 200);
      if (ok !== 'ok') {
        const why = ok === 'exited' ? `exited (${cp.exitCode ?? cp.signalCode})` : 'not serving GET / within 30 s';
        die(`baton did not start: ${why}\n--- baton.out\n${tail(path.join(dir, 'baton.out'), 15)}\n--- error.log\n${tail(path.join(dir, 'error.log'), 15)}`, 1);
      }
      const s = await status();
      event(`baton started: master ${readPidFile(pidFile)}, version ${s.version}, generation ${genOf(s)}, workers ${(s.workers || []).map((w) => w.pid).join(' ')}`);
    },

    async upgrade(n, onDrainStart) {
      const version = `${this.baseVersion}-drill.${n}`;
      pkgJson.version = version;
      writeAtomic(path.join(pkg, 'package.json'), JSON.stringify(pkgJson, null, 2) + '\n');
      const oldPid = readPidFile(pidFile);
      if (!isAlive(oldPid)) return procFail(`cycle ${n}: pid file names no live master (${oldPid})`);
      const t0 = Date.now();
      event(`cycle ${n}: version -> ${version}; USR2 to ${oldPid}`);
      signal(oldPid, 'SIGUSR2');
      let last = null;
      const ready = await waitFor(async () => {
        const np = readPidFile(pidFile);
        if (!np || np === oldPid || !isAlive(np)) return null;
        const s = (last = await status());
        return s && s.pid === np && s.version === version ? { newPid: np, s } : null;
      }, 75_000, 100);
      if (!ready) {
        return procFail(
          `cycle ${n}: no new master reporting version ${version} within 75 s (pid file ${readPidFile(pidFile)}, .oldbin ${readPidFile(oldbin)}, ` +
            `old alive ${isAlive(oldPid)}, last /status pid ${last?.pid} version ${last?.version})`,
        );
      }
      const { newPid } = ready;
      const tReady = Date.now();
      if (readPidFile(oldbin) !== oldPid) procFail(`cycle ${n}: ${path.basename(oldbin)} names ${readPidFile(oldbin)}, expected ${oldPid}`);
      event(`cycle ${n}: new master ${newPid} ready with version ${version} (generation ${genOf(ready.s)}) after ${Date.now() - t0} ms; WINCH to ${oldPid}`);
      const oldWorkers = () => childrenOf(oldPid).filter((p) => p !== newPid);
      signal(oldPid, 'SIGWINCH');
      const stopAccepting = await onDrainStart(oldWorkers(), `cycle ${n}`);
      const drained = await waitFor(() => oldWorkers().length === 0, opt.shutdownTimeout + 15_000, 100);
      const tDrained = Date.now();
      if (!drained) procFail(`cycle ${n}: old master ${oldPid} still has workers ${oldWorkers().join(' ')} ${opt.shutdownTimeout / 1000 + 15} s after WINCH`);
      else event(`cycle ${n}: old workers gone ${tDrained - tReady} ms after WINCH; QUIT to ${oldPid}`);
      signal(oldPid, 'SIGQUIT');
      const exited = await waitExit(oldPid, opt.shutdownTimeout + 15_000);
      if (!exited) procFail(`cycle ${n}: old master ${oldPid} did not exit after QUIT`);
      if (fs.existsSync(oldbin)) procFail(`cycle ${n}: ${path.basename(oldbin)} still exists after the old master left`);
      if (readPidFile(pidFile) !== newPid) procFail(`cycle ${n}: pid file names ${readPidFile(pidFile)} after QUIT, expected ${newPid}`);
      const s = await status();
      if (!s || s.pid !== newPid || s.version !== version) procFail(`cycle ${n}: /status after QUIT says pid ${s?.pid} version ${s?.version}`);
      event(`cycle ${n}: old master ${oldPid} exited (${Date.now() - tDrained} ms after QUIT)`);
      return { n, oldPid, newPid, version: s?.version ?? '?', ready: tReady - t0, stopAccepting, drain: tDrained - tReady, quit: Date.now() - tDrained };
    },

    async reload(i, onDrainStart) {
      const v = i % 2 === 1 ? 'B' : 'A';
      const s0 = await status();
      const g0 = genOf(s0);
      const pid = readPidFile(pidFile);
      const oldWorkers = (s0?.workers || []).map((w) => w.pid);
      writeAtomic(conf, confText(v));
      const t0 = Date.now();
      event(`reload ${i}: config variant ${v} (workers ${variants[v].workers}); HUP to ${pid} (generation ${g0}, workers ${oldWorkers.join(' ')})`);
      signal(pid, 'SIGHUP');
      let last = null;
      const s1 = await waitFor(async () => {
        const s = (last = await status());
        const g = genOf(s);
        return s && g !== null && g !== g0 ? s : null;
      }, 30_000, 100);
      if (!s1) return procFail(`reload ${i}: /status did not report a new generation within 30 s (still ${genOf(last)})`);
      const workersOfGen = (s1.workers || []).filter((w) => w.generation === undefined || String(w.generation) === String(genOf(s1)));
      const ms = Date.now() - t0;
      event(`reload ${i}: generation ${g0} -> ${genOf(s1)} after ${ms} ms (${workersOfGen.length} workers listed for it: ${workersOfGen.map((w) => w.pid).join(' ')})`);
      const stopAccepting = await onDrainStart(oldWorkers, `reload ${i}`);
      return { i, variant: v, workers: variants[v].workers, from: g0, to: genOf(s1), ms, stopAccepting };
    },

    async stop() {
      const pid = readPidFile(pidFile);
      if (!isAlive(pid)) return procFail(`stop: no live master in the pid file (${pid})`);
      const tree = [pid, ...childrenOf(pid)];
      event(`QUIT to ${pid}`);
      signal(pid, 'SIGQUIT');
      const ok = await waitFor(() => tree.every((p) => !isAlive(p)), opt.shutdownTimeout + 15_000, 100);
      if (!ok) procFail(`stop: still alive after QUIT: ${tree.filter(isAlive).join(' ')}`);
      else event(`baton stopped`);
      if (fs.existsSync(pidFile)) procFail('stop: pid file still exists after the master left');
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// nginx

function nginxConfig({ dir, port, upPort, workers, shutdownTimeout, variant }) {
  return `# scripts/upgrade-drill against nginx, variant ${variant}
daemon on;            # nginx honours WINCH only when daemonized
master_process on;
worker_processes ${workers};
worker_shutdown_timeout ${Math.round(shutdownTimeout / 1000)}s;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 4096; }
http {
    access_log ${dir}/access.log combined buffer=64k flush=1s;
    keepalive_timeout 65s;
    client_max_body_size 2m;
    client_body_buffer_size 512k;
${NGINX_TEMP_PATHS(dir + '/nginx-tmp')}
    upstream app {
        server ${HOST}:${upPort};
        keepalive 64;
        keepalive_timeout 4s;
    }
    server {
        listen ${HOST}:${port} backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /ws {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }${variant === 'B' ? '\n        location = /drill-variant-b { return 200 "b\\n"; }' : ''}
    }
}
`;
}

function makeNginx(opt, dir, ports, nginxBin) {
  const conf = path.join(dir, 'nginx.conf');
  const pidFile = path.join(dir, 'nginx.pid');
  const oldbin = pidFile + '.oldbin';
  const variants = { A: { workers: 2, variant: 'A' }, B: { workers: 3, variant: 'B' } };
  const confText = (v) => nginxConfig({ dir, ...ports, ...variants[v], shutdownTimeout: opt.shutdownTimeout });
  let gen = 1;
  return {
    name: 'nginx',
    errorLog: path.join(dir, 'error.log'),
    logs: ['error.log', 'access.log'],
    port: ports.port,
    masterPid: () => readPidFile(pidFile),

    async start() {
      writeAtomic(conf, confText('A'));
      const err = await nginxTest(nginxBin, conf, dir);
      if (err) die(`nginx.conf does not pass nginx -t:\n${err}`);
      cleanup.addPidFile(pidFile);
      cleanup.addPidFile(oldbin);
      // absolute binary path: nginx re-execs argv[0] on USR2 with execve (no PATH lookup)
      const r = await runCapture(nginxBin, ['-p', dir + '/', '-c', conf, '-e', path.join(dir, 'error.log')], { timeoutMs: 15_000 });
      const ok = await waitFor(async () => {
        const pid = readPidFile(pidFile);
        const res = await httpGet(ports.port, '/', { timeout: 1000 });
        return pid && isAlive(pid) && res?.status === 200 && res.body === 'ok\n';
      }, 15_000, 200);
      if (!ok) die(`nginx did not start (exit ${r.code}): ${r.stderr}\n${tail(path.join(dir, 'error.log'))}`, 1);
      const pid = readPidFile(pidFile);
      event(`nginx started: master ${pid}, workers ${childrenOf(pid).join(' ')}`);
    },

    async upgrade(n, onDrainStart) {
      const oldPid = readPidFile(pidFile);
      if (!isAlive(oldPid)) return procFail(`cycle ${n}: pid file names no live master (${oldPid})`);
      const t0 = Date.now();
      event(`cycle ${n}: USR2 to nginx ${oldPid} (re-exec of the same binary)`);
      signal(oldPid, 'SIGUSR2');
      const ready = await waitFor(() => {
        const np = readPidFile(pidFile);
        if (!np || np === oldPid || !isAlive(np)) return null;
        return readPidFile(oldbin) === oldPid && childrenOf(np).length >= 1 ? np : null;
      }, 30_000, 100);
      if (!ready) return procFail(`cycle ${n}: no new nginx master with workers within 30 s (pid file ${readPidFile(pidFile)}, .oldbin ${readPidFile(oldbin)})`);
      const newPid = ready;
      const tReady = Date.now();
      event(`cycle ${n}: new master ${newPid} ready after ${tReady - t0} ms; WINCH to ${oldPid}`);
      const oldWorkers = () => childrenOf(oldPid).filter((p) => p !== newPid);
      signal(oldPid, 'SIGWINCH');
      const stopAccepting = await onDrainStart(oldWorkers(), `cycle ${n}`);
      const drained = await waitFor(() => oldWorkers().length === 0, opt.shutdownTimeout + 15_000, 100);
      const tDrained = Date.now();
      if (!drained) procFail(`cycle ${n}: old master ${oldPid} still has workers ${oldWorkers().join(' ')} after WINCH`);
      else event(`cycle ${n}: old workers gone ${tDrained - tReady} ms after WINCH; QUIT to ${oldPid}`);
      signal(oldPid, 'SIGQUIT');
      if (!(await waitExit(oldPid, opt.shutdownTimeout + 15_000))) procFail(`cycle ${n}: old master ${oldPid} did not exit after QUIT`);
      if (readPidFile(pidFile) !== newPid) procFail(`cycle ${n}: pid file names ${readPidFile(pidFile)} after QUIT, expected ${newPid}`);
      event(`cycle ${n}: old master ${oldPid} exited (${Date.now() - tDrained} ms after QUIT)`);
      return { n, oldPid, newPid, version: 'nginx (same binary)', ready: tReady - t0, stopAccepting, drain: tDrained - tReady, quit: Date.now() - tDrained };
    },

    async reload(i, onDrainStart) {
      const v = i % 2 === 1 ? 'B' : 'A';
      const pid = readPidFile(pidFile);
      const before = new Set(childrenOf(pid));
      writeAtomic(conf, confText(v));
      const t0 = Date.now();
      event(`reload ${i}: config variant ${v} (workers ${variants[v].workers}); HUP to ${pid}`);
      signal(pid, 'SIGHUP');
      const fresh = await waitFor(() => {
        const now = childrenOf(pid).filter((p) => !before.has(p));
        return now.length >= variants[v].workers ? now : null;
      }, 30_000, 100);
      if (!fresh) return procFail(`reload ${i}: no new nginx workers within 30 s`);
      const from = gen++;
      const ms = Date.now() - t0;
      event(`reload ${i}: new workers ${fresh.join(' ')} after ${ms} ms`);
      const stopAccepting = await onDrainStart([...before], `reload ${i}`);
      return { i, variant: v, workers: variants[v].workers, from, to: gen, ms, stopAccepting };
    },

    async stop() {
      const pid = readPidFile(pidFile);
      if (!isAlive(pid)) return procFail(`stop: no live nginx master (${pid})`);
      const tree = [pid, ...childrenOf(pid)];
      event(`QUIT to nginx ${pid}`);
      signal(pid, 'SIGQUIT');
      if (!(await waitFor(() => tree.every((p) => !isAlive(p)), opt.shutdownTimeout + 15_000, 100)))
        procFail(`stop: still alive after QUIT: ${tree.filter(isAlive).join(' ')}`);
      else event('nginx stopped');
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// load

function startWrk(wrkBin, args, dir, label) {
  const cp = spawnTracked(wrkBin, args, { stdout: path.join(dir, `wrk-${label}.txt`), stderr: path.join(dir, `wrk-${label}.txt`) });
  const done = new Promise((r) => cp.once('exit', r));
  return {
    label,
    args,
    cp,
    async stop() {
      signal(cp.pid, 'SIGINT'); // wrk prints its statistics on SIGINT
      const exited = await Promise.race([done.then(() => true), sleep(15_000).then(() => false)]);
      if (!exited) signal(cp.pid, 'SIGKILL');
      const text = fs.readFileSync(path.join(dir, `wrk-${label}.txt`), 'utf8');
      return parseWrk(text);
    },
  };
}

function startClients(opt, dir, port) {
  const cp = spawnTracked(
    process.execPath,
    [path.join(REPO_DIR, 'scripts/lib/drill-clients.mjs'), JSON.stringify({ port, slow: opt.slow, uploaders: opt.uploaders, ws: opt.ws })],
    { cwd: dir, stdout: path.join(dir, 'clients.out'), stderr: path.join(dir, 'clients.out'), ipc: true },
  );
  // one pending wait per message type; the child's exit resolves every pending wait with null
  const waiting = new Map(); // type -> [resolve]
  const settle = (type, value) => {
    for (const r of waiting.get(type) ?? []) r(value);
    waiting.delete(type);
  };
  cp.on('message', (m) => m?.type && settle(m.type, m));
  cp.once('exit', () => [...waiting.keys()].forEach((t) => settle(t, null)));
  const next = (type, ms) =>
    new Promise((resolve) => {
      if (cp.exitCode !== null || cp.signalCode !== null) return resolve(null);
      const t = setTimeout(() => {
        const list = waiting.get(type) ?? [];
        const i = list.indexOf(done);
        if (i >= 0) list.splice(i, 1);
        resolve(null);
      }, ms);
      const done = (v) => {
        clearTimeout(t);
        resolve(v);
      };
      if (!waiting.has(type)) waiting.set(type, []);
      waiting.get(type).push(done);
    });
  return {
    cp,
    ready: () => next('ready', 20_000),
    async wsReconnect() {
      if (!opt.ws) return true;
      const p = next('ws-reconnected', 20_000);
      cp.send({ cmd: 'ws-reconnect' });
      return !!(await p);
    },
    async stop() {
      const p = next('result', 60_000);
      cp.send({ cmd: 'stop' });
      return p;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  if (opt.h2) log('note: --h2 is reserved; HTTP/2 (h2load) comes with a later issue, so it is ignored in this run');
  const wrk = which('wrk');
  const nginx = which('nginx') || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  if (!wrk) die('wrk is not installed (apt-get install -y wrk)');
  if (opt.against === 'nginx' && !nginx) die('nginx is not installed (apt-get install -y nginx-light)');

  const dir = mkTempDir(`${opt.against}-drill-`);
  log(`temp dir: ${dir}`);
  const [upPort, port, adminPort] = await freePorts(3);
  const ports = { upPort, port, adminPort };

  spawnTracked(process.execPath, [path.join(REPO_DIR, 'scripts/lib/drill-upstream.mjs'), String(upPort)], {
    cwd: dir,
    stdout: path.join(dir, 'upstream.out'),
    stderr: path.join(dir, 'upstream.out'),
  });
  if (!(await waitFor(async () => (await httpGet(upPort, '/'))?.status === 200, 10_000, 100))) die(`upstream did not start: ${tail(path.join(dir, 'upstream.out'))}`);

  const target = opt.against === 'nginx' ? makeNginx(opt, dir, ports, nginx) : makeBaton(opt, dir, ports);
  await target.start();

  // ---- load
  const url = `http://${HOST}:${port}/`;
  const wrkKa = startWrk(wrk, ['-t2', '-c32', '-d600s', '--timeout', '10s', '--latency', url], dir, 'keepalive');
  const wrkClose = startWrk(wrk, ['-t1', '-c8', '-d600s', '--timeout', '10s', '--latency', '-H', 'Connection: close', url], dir, 'close');
  const clients = startClients(opt, dir, port);
  if (!(await clients.ready())) die(`the Node clients did not start: ${tail(path.join(dir, 'clients.out'))}`);
  event(`load running: wrk -c32 keep-alive, wrk -c8 Connection: close, ${opt.slow} /slow in flight, ${opt.uploaders} upload loops, ${opt.ws} WebSockets`);
  await sleep(opt.warm);

  // ---- upgrades, then reloads
  const cycles = [];
  const reloads = [];
  // When a generation starts draining: wait until its workers no longer hold the listening socket (so a new
  // connection cannot land on them), then move the WebSockets to new connections, so that the old generation is not
  // kept alive by them until shutdown_timeout (which would end them: expected behaviour, but not what we measure).
  const onDrainStart = async (oldWorkers, step) => {
    const ms = await waitStopAccepting(oldWorkers, port, 10_000);
    if (ms === null) procFail(`${step}: old workers ${oldWorkers.join(' ')} still hold the listening socket 10 s after the drain began`);
    else event(`${step}: old workers ${oldWorkers.join(' ')} stopped accepting (${ms} ms); reconnecting WebSockets`);
    if (!(await clients.wsReconnect())) procFail(`${step}: WebSocket clients did not report their reconnection within 20 s`);
    return ms;
  };
  for (let n = 1; n <= opt.cycles && !procedureFailures.length; n++) {
    const r = await target.upgrade(n, onDrainStart);
    if (r) cycles.push(r);
    await sleep(1000);
  }
  for (let i = 1; i <= opt.reloads && !procedureFailures.length; i++) {
    const r = await target.reload(i, onDrainStart);
    if (r) reloads.push(r);
    await sleep(2000);
  }
  if (procedureFailures.length) log('a step of the procedure failed: skipping the remaining steps');

  // ---- stop load, then the proxy
  event('stopping the load');
  const [ka, close, cres] = await Promise.all([wrkKa.stop(), wrkClose.stop(), clients.stop()]);
  event('load stopped');
  await target.stop();
  await cleanup.run();

  // ---- report
  const rows = [];
  let total = 0;
  let totalReq = 0;
  const wrkRow = (name, w) => {
    const f = w.socketErrors + w.non2xx;
    total += f;
    totalReq += w.requests ?? 0;
    rows.push([
      name,
      w.requests ?? 'no result',
      f,
      fmtMs(w.p99),
      `socket errors: connect ${w.socket.connect}, read ${w.socket.read}, write ${w.socket.write}, timeout ${w.socket.timeout}; non-2xx/3xx ${w.non2xx}`,
    ]);
    if (!w.ok) procFail(`${name}: wrk printed no result`);
  };
  wrkRow('wrk keep-alive -c32', ka);
  wrkRow('wrk Connection: close -c8', close);
  if (!cres) procFail('the Node clients returned no result');
  const cs = cres?.stats ?? {};
  const labels = { slow: `slow GET (${opt.slow} in flight)`, upload: `POST upload 256 KiB x${opt.uploaders}`, ws: `WebSocket x${opt.ws} (msgs)` };
  for (const k of ['slow', 'upload', 'ws']) {
    const s = cs[k];
    if (!s) continue;
    total += s.failures;
    totalReq += s.requests;
    const kinds = Object.entries(s.kinds).map(([k2, n]) => `${k2} ${n}`);
    const info = Object.entries(s.info).map(([k2, n]) => `${k2} ${n}`);
    rows.push([labels[k], s.requests, s.failures, fmtMs(s.p99), [kinds.join(', ') || 'ok', info.length ? `(${info.join(', ')})` : ''].filter(Boolean).join(' ')]);
  }
  total += procedureFailures.length;
  rows.push(['procedure (upgrades/reloads)', `${cycles.length}+${reloads.length}`, procedureFailures.length, '', procedureFailures.length ? 'see below' : 'ok']);
  rows.push(['TOTAL', totalReq, total, '', '']);

  const out = [];
  out.push('');
  out.push(
    `scripts/upgrade-drill against ${target.name}: ${cycles.length}/${opt.cycles} upgrades (USR2 -> WINCH -> QUIT), ${reloads.length}/${opt.reloads} HUP reloads, ` +
      `shutdown_timeout ${opt.shutdownTimeout / 1000}s, ${((Date.now() - T0) / 1000).toFixed(0)} s in all, ${os.cpus().length} CPUs`,
  );
  out.push('');
  out.push(table(['client', 'requests', 'failures', 'p99', 'details'], rows, { leftLast: true }));
  out.push('');
  if (cycles.length)
    out.push(
      table(
        ['upgrade', 'old pid', 'new pid', '/status version', 'USR2->ready', 'WINCH->not accepting', 'WINCH->workers gone', 'QUIT->exit'],
        cycles.map((c) => [c.n, c.oldPid, c.newPid, c.version, fmtMs(c.ready), fmtMs(c.stopAccepting), fmtMs(c.drain), fmtMs(c.quit)]),
      ),
    );
  if (reloads.length) {
    out.push('');
    out.push(
      table(
        ['reload', 'variant', 'workers', 'generation', 'HUP->new generation', 'old workers not accepting'],
        reloads.map((r) => [r.i, r.variant, r.workers, `${r.from} -> ${r.to}`, fmtMs(r.ms), fmtMs(r.stopAccepting)]),
      ),
    );
  }
  const fails = [...(cres?.failures ?? []).map((f) => ({ ...f, what: `${f.client}: ${f.kind}${f.detail ? ` (${f.detail})` : ''}` })), ...procedureFailures.map((f) => ({ ...f, what: `procedure: ${f.what}` }))].sort((a, b) => a.t - b.t);
  if (fails.length) {
    out.push('');
    out.push('failures and notable client events, with the last step before each:');
    for (const f of fails.slice(0, 40)) {
      const before = events.filter((e) => e.t <= f.t).at(-1);
      out.push(`  ${rel(f.t)} ${f.what}${before ? `   [after ${rel(before.t)} ${before.what}]` : ''}`);
    }
    if (fails.length > 40) out.push(`  ... ${fails.length - 40} more`);
  }
  if (ka.socketErrors + ka.non2xx + close.socketErrors + close.non2xx > 0)
    out.push('  (wrk reports totals only, not times: see the timeline on stderr and the proxy error log)');
  const el = countErrorLines(target.errorLog);
  out.push('');
  out.push(`${target.name} error log: ${el.count} warn/error lines (${el.errors} at error level or above)${el.count ? ', grouped:' : ''}`);
  for (const [k, n] of el.groups.slice(0, 10)) out.push(`  ${String(n).padStart(5)} x ${k}`);
  if (el.count) out.push(`  (full lines in ${target.errorLog})`);
  const keep = opt.keep || total > 0 || el.count > 0;
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  out.push('');
  out.push(keep ? `logs kept in ${dir}` : `temp dir removed (use --keep to keep it)`);
  out.push(total === 0 ? 'RESULT: zero failures' : `RESULT: ${total} failures`);
  if (opt.h2) out.push('--h2: ignored (HTTP/2 comes in a later issue).');
  process.stdout.write(out.join('\n') + '\n');
  return total === 0 ? 0 : 1;
}

main().then(
  async (code) => {
    await cleanup.run();
    process.exit(code);
  },
  async (err) => {
    process.stderr.write(`upgrade-drill: ${err.exitCode ? err.message : err.stack}\n`);
    await cleanup.run();
    process.exit(err.exitCode || 1);
  },
);
