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
  makeCert,
  mkTempDir,
  nginxTest,
  parseDuration,
  parseH2load,
  parseWrk,
  percentile,
  readH2loadLog,
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
  runMain,
} from './common.mjs';
import { EDGE_RATE_LIMIT, EDGE_TOP, edgeListeners, startHaproxy } from './drill-edge.mjs';

/**
 * What the draining workers of a run handed over and what stayed, by reason: the sum of their "drained" lines in
 * the error log (a worker cut at shutdown_timeout writes none).
 */
function handoffTally(errorLog) {
  const moved = { http1: 0, websocket: 0 };
  const stayed = {};
  let text = '';
  try {
    text = fs.readFileSync(errorLog, 'utf8');
  } catch {
    return { moved, stayed };
  }
  for (const line of text.split('\n')) {
    if (!line.includes('drained: connections handed over')) continue;
    let o;
    try {
      o = JSON.parse(line);
    } catch {
      continue;
    }
    for (const k of Object.keys(moved)) moved[k] += o.handed_over?.[k] ?? 0;
    for (const [k, n] of Object.entries(o.stayed ?? {})) stayed[k] = (stayed[k] ?? 0) + n;
  }
  return { moved, stayed };
}

/** CPU time (user + system) a live process has used, in ms (clock ticks of 10 ms), or null when it is gone. */
function cpuMs(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

const HELP = `usage: scripts/upgrade-drill [options]

Starts an upstream (Node: / at once, /slow after 2 s, POST /upload echoing the byte count, /ws WebSocket echo),
a proxy in front of it, and real clients for the whole run: wrk keep-alive (-c32), wrk "Connection: close" (-c8),
~10 /slow requests always in flight, POST uploads of 256 KiB, WebSocket connections sending every 200 ms (echoes
checked in sequence), idle keep-alive connections (a request, then 0.2-1.5 s idle), and (default) HTTP/2: h2load
over TLS (h2 by ALPN) and over cleartext h2c (prior knowledge), short runs back to back. Then N upgrades (bump the
version of a temp copy of the package; USR2; wait for the new master and its /status version; WINCH the old one;
wait for its workers to leave; QUIT it) and N HUP reloads (config alternating between two variants, workers 2 <-> 3).
Then (baton) the idle phase: the load stops, shutdown_timeout is raised, hundreds of idle keep-alive connections and
WebSockets open, and one HUP and one upgrade are timed from the new generation ready to the old one gone.
baton runs the whole drill twice, with drain.handoff: off then on, and prints both and a comparison: per client,
requests, failures, p99 and the connections the server closed (wrk cannot tell: its busy connections are closed
after a response in flight at a drain anyway, with Connection: close). Exits 1 on any failure, except the idle
clients' requests that meet a server close without hand-off (the keep-alive race: shown, it is what the hand-off
removes).

  --cycles N            USR2 -> WINCH -> QUIT upgrades (default 5)
  --reloads N           HUP reloads (default 5)
  --against baton|nginx the proxy under test (default baton); nginx re-execs its own binary on USR2
  --baton-src DIR       package to copy (bin/, dist/, package.json, node_modules link) (default ${REPO_DIR})
  --shutdown-timeout D  proxy's hard drain limit (default 30s; nginx: worker_shutdown_timeout)
  --warm D              load before the first upgrade (default 3s)
  --slow N --uploaders N --ws N --idle N   client counts (defaults 10, 2, 4, 20)
  --handoff both|on|off drain.handoff of the runs (baton; default both: off, then on)
  --no-idle-phase       skip the idle phase
  --idle-ws N --idle-conns N   the idle phase's WebSockets and idle keep-alive connections (defaults 100, 500)
  --idle-shutdown-timeout D    shutdown_timeout during the idle phase (default 60s)
  --idle-pause D-D      how long each idle keep-alive connection of the idle phase waits between its requests, a random
                        time in this range (default 1s-4s: about 200 requests/s from 500 connections, served while
                        they move); a long pause (e.g. 60s-90s) times the hand-off alone
  --edge                baton behind HAProxy (scripts/lib/drill-edge.mjs): a unix listener and a TCP listener with
                        proxy_protocol, a rate_limit (above the load) and header rules on the drilled route,
                        gzip compression; wrk keep-alive -c8 (Accept-Encoding: gzip) through HAProxy's PROXY v2 to
                        the unix socket and wrk Connection: close -c4 through its PROXY v1 to the TCP listener
                        (baton only)
  --keep                keep the temp dir (it is kept anyway when something failed)
  --log-level L         baton's log level (default info; debug: each hand-off step in error.log, for
                        scripts/lib/handoff-trace.mjs)
  --h2                  HTTP/2 load too (the default): baton's main port gets h2c: true (HTTP/1.1 and h2c on one
                        port) plus a TLS listener; nginx gets "listen ... ssl http2" and "listen ... http2" (h2c
                        only, 1.22 cannot share a cleartext port) ports. Certificate: openssl, in the temp dir.
  --no-h2               no HTTP/2 listeners, no h2load
  --h2-clients N        h2load -c per protocol (default 4)
  --h2-streams N        h2load -m (default 10)
  --h2-run D            aimed length of each h2load run (default 3s; -n is sized from the previous run's rate)
  --grpc N              gRPC lanes through the h2c port (default 4; 0 = none; needs --h2): a @grpc/grpc-js upstream
                        (scripts/lib/drill-grpc.mjs) behind "protocol: http2" (nginx: grpc_pass), and clients
                        running N lanes of 2 s server-streaming calls, N lanes of bidirectional ping-pong calls and
                        one lane of unary calls for the whole run; every call must end OK with every message
  -h, --help            this text

HTTP/2 accounting. Each h2load run is "-n N" (not -D: at the end of a -D run the streams still in flight are
"started" but not "done", which hides streams lost with a dying connection). A failure is a stream h2load SENT that
did not come back 2xx/3xx: started - (2xx + 3xx) (reset, refused, 4xx/5xx, timeout, lost with its connection),
plus any run in which a client completed nothing (connect, TLS or preface failure: h2load counts those nowhere).
h2load's own "failed" also counts the requests a client never sent because a GOAWAY stopped it (h2load does not
reconnect): those are reported apart ("not sent after GOAWAY"), they are not failures.`;

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
    idle: 20,
    handoff: 'both',
    big: true,
    bigWs: 100,
    bigIdle: 500,
    bigShutdownTimeout: 60_000,
    bigPause: [1000, 4000],
    keep: false,
    h2: true,
    h2Clients: 4,
    h2Streams: 10,
    h2Run: 3000,
    grpc: 4,
    edge: false,
    logLevel: 'info',
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
      case '--idle': o.idle = int('--idle', 1000); break;
      case '--handoff': o.handoff = v(); break;
      case '--no-idle-phase': o.big = false; break;
      case '--idle-ws': o.bigWs = int('--idle-ws', 1000); break;
      case '--idle-conns': o.bigIdle = int('--idle-conns', 5000); break;
      case '--idle-shutdown-timeout': o.bigShutdownTimeout = parseDuration(v()); break;
      case '--idle-pause': {
        const m = /^([^-]+)-([^-]+)$/.exec(v());
        const range = m ? [parseDuration(m[1]), parseDuration(m[2])] : [];
        if (!m || !(range[0] > 0) || !(range[1] >= range[0])) die('--idle-pause must be MIN-MAX durations, MIN > 0 and MAX >= MIN (e.g. 1s-4s)');
        o.bigPause = range;
        break;
      }
      case '--edge': o.edge = true; break;
      case '--keep': o.keep = true; break;
      case '--log-level': o.logLevel = v(); break;
      case '--h2': o.h2 = true; break;
      case '--no-h2': o.h2 = false; break;
      case '--h2-clients': o.h2Clients = int('--h2-clients', 64) || 1; break;
      case '--h2-streams': o.h2Streams = int('--h2-streams', 100) || 1; break;
      case '--h2-run': o.h2Run = parseDuration(v()); break;
      case '--grpc': o.grpc = int('--grpc', 64); break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (!['baton', 'nginx'].includes(o.against)) die('--against must be baton or nginx');
  if (!['both', 'on', 'off'].includes(o.handoff)) die('--handoff must be both, on or off');
  if (o.shutdownTimeout < 1000 || o.shutdownTimeout > 600_000) die('--shutdown-timeout must be between 1s and 10m');
  if (o.h2Run < 1000 || o.h2Run > 60_000) die('--h2-run must be between 1s and 60s');
  if (!o.h2) o.grpc = 0; // gRPC needs the h2c listener
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

/** A failure found while writing the report (after cleanup began, when procFail would abort the run). */
function lateFail(what) {
  procedureFailures.push({ t: Date.now(), what });
  log(`${rel(Date.now())} FAILURE: ${what}`);
}

// ---------------------------------------------------------------------------------------------------------
// baton

function batonConfig({ port, adminPort, upPort, workers, variant, shutdownTimeout, h2, handoff, ppPort, grpcPort, logLevel = 'info' }) {
  // h2: {tlsPort, cert, key} or null. The main port serves HTTP/1.1 and h2c (prior knowledge) together.
  const main = h2
    ? `  - listen: ${HOST}:${port}
    h2c: true
  - listen: ${HOST}:${h2.tlsPort}
    tls: { cert: "${h2.cert}", key: "${h2.key}" }`
    : `  - listen: ${HOST}:${port}`;
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
drain: { handoff: ${handoff ? 'on' : 'off'} }
${ppPort ? EDGE_TOP : ''}log: { level: ${logLevel}, error: error.log, access: access.log }
admin: { listen: ${HOST}:${adminPort} }
listeners:
${main}
${ppPort ? edgeListeners(ppPort) : ''}
upstreams:
  app:
    targets: [ { url: "http://${HOST}:${upPort}" } ]
    keepalive_timeout: 4s${grpcPort ? `
  grpc:
    protocol: http2
    targets: [ { url: "http://${HOST}:${grpcPort}" } ]` : ''}
routes:
${extra}${grpcPort ? `  - path: /baton.test.Echo/
    upstream: grpc
` : ''}  - path: /
    upstream: app
${ppPort ? EDGE_RATE_LIMIT : ''}`;
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
  let shutdownTimeout = opt.shutdownTimeout;
  const confText = (v) => batonConfig({ ...ports, ...variants[v], shutdownTimeout, h2: ports.h2, handoff: opt.handoff, logLevel: opt.logLevel });
  const status = () => httpJson(ports.adminPort, '/status', { timeout: 2000 });
  const genOf = (s) => (s && s.generation !== null && s.generation !== undefined ? (typeof s.generation === 'object' ? s.generation.id ?? JSON.stringify(s.generation) : s.generation) : null);

  return {
    name: 'baton',
    errorLog: path.join(dir, 'error.log'),
    logs: ['baton.out', 'error.log', 'access.log'],
    port: ports.port,
    masterPid: () => readPidFile(pidFile),
    /** shutdown_timeout of the configs written from now on (the idle phase raises it). */
    set shutdownTimeout(ms) {
      shutdownTimeout = ms;
    },

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
      const drained = await waitFor(() => oldWorkers().length === 0, shutdownTimeout + 15_000, 100);
      const tDrained = Date.now();
      if (!drained) procFail(`cycle ${n}: old master ${oldPid} still has workers ${oldWorkers().join(' ')} ${shutdownTimeout / 1000 + 15} s after WINCH`);
      else event(`cycle ${n}: old workers gone ${tDrained - tReady} ms after WINCH; QUIT to ${oldPid}`);
      signal(oldPid, 'SIGQUIT');
      const exited = await waitExit(oldPid, shutdownTimeout + 15_000);
      if (!exited) procFail(`cycle ${n}: old master ${oldPid} did not exit after QUIT`);
      if (fs.existsSync(oldbin)) procFail(`cycle ${n}: ${path.basename(oldbin)} still exists after the old master left`);
      if (readPidFile(pidFile) !== newPid) procFail(`cycle ${n}: pid file names ${readPidFile(pidFile)} after QUIT, expected ${newPid}`);
      const s = await status();
      if (!s || s.pid !== newPid || s.version !== version) procFail(`cycle ${n}: /status after QUIT says pid ${s?.pid} version ${s?.version}`);
      event(`cycle ${n}: old master ${oldPid} exited (${Date.now() - tDrained} ms after QUIT)`);
      return { n, oldPid, newPid, version: s?.version ?? '?', ready: tReady - t0, stopAccepting, drain: tDrained - tReady, quit: Date.now() - tDrained };
    },

    /** `waitGone`: also wait for the old generation's workers to exit, and time it from the new one ready. */
    async reload(i, onDrainStart, { waitGone = false } = {}) {
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
      const tReady = Date.now();
      const stopAccepting = await onDrainStart(oldWorkers, `reload ${i}`);
      let gone = null;
      if (waitGone) {
        // CPU used from the new generation ready to the old one gone, by the old workers (their last sample before
        // exit), the master and the new workers: what the drain costs, apart from how loaded the machine is.
        const newWorkers = workersOfGen.map((w) => w.pid);
        const at0 = new Map([...oldWorkers, pid, ...newWorkers].map((p) => [p, cpuMs(p)]));
        const last = new Map(at0);
        const sample = () => { for (const p of oldWorkers) { const c = cpuMs(p); if (c !== null) last.set(p, c); } };
        if (await waitFor(() => (sample(), oldWorkers.every((p) => !isAlive(p))), shutdownTimeout + 15_000, 20)) {
          gone = Date.now() - tReady;
          for (const p of [pid, ...newWorkers]) last.set(p, cpuMs(p));
          const used = (ps) => ps.reduce((sum, p) => sum + ((last.get(p) ?? 0) - (at0.get(p) ?? 0)), 0);
          event(`reload ${i}: old workers ${oldWorkers.join(' ')} gone ${gone} ms after the new generation was ready; CPU meanwhile: old workers ${used(oldWorkers)} ms, master ${used([pid])} ms, new workers ${used(newWorkers)} ms`);
        } else procFail(`reload ${i}: old workers ${oldWorkers.filter(isAlive).join(' ')} still alive ${shutdownTimeout / 1000 + 15} s after the new generation`);
      }
      return { i, variant: v, workers: variants[v].workers, from: g0, to: genOf(s1), ms, stopAccepting, gone };
    },

    async stop() {
      const pid = readPidFile(pidFile);
      if (!isAlive(pid)) return procFail(`stop: no live master in the pid file (${pid})`);
      const tree = [pid, ...childrenOf(pid)];
      event(`QUIT to ${pid}`);
      signal(pid, 'SIGQUIT');
      const ok = await waitFor(() => tree.every((p) => !isAlive(p)), shutdownTimeout + 15_000, 100);
      if (!ok) procFail(`stop: still alive after QUIT: ${tree.filter(isAlive).join(' ')}`);
      else event(`baton stopped`);
      if (fs.existsSync(pidFile)) procFail('stop: pid file still exists after the master left');
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// nginx

function nginxConfig({ dir, port, upPort, workers, shutdownTimeout, variant, h2, grpcPort }) {
  // h2: {tlsPort, h2cPort, cert, key} or null. A server of its own, so that the HTTP/1.1 server above is exactly
  // what it was without --h2; keepalive_requests bounds HTTP/2 streams per connection too since 1.19.7 (its
  // default 1000 would GOAWAY every h2load client after 1000 streams); TLSv1.3 is not in 1.22's default.
  const h2Server = h2
    ? `
    server {
        listen ${HOST}:${h2.tlsPort} ssl http2 backlog=4096;
        listen ${HOST}:${h2.h2cPort} http2 backlog=4096;
        ssl_certificate ${h2.cert};
        ssl_certificate_key ${h2.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }${grpcPort ? `
        location /baton.test.Echo/ {
            grpc_pass grpc://${HOST}:${grpcPort};
        }` : ''}
    }`
    : '';
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
    }${h2Server}
}
`;
}

function makeNginx(opt, dir, ports, nginxBin) {
  const conf = path.join(dir, 'nginx.conf');
  const pidFile = path.join(dir, 'nginx.pid');
  const oldbin = pidFile + '.oldbin';
  const variants = { A: { workers: 2, variant: 'A' }, B: { workers: 3, variant: 'B' } };
  const confText = (v) => nginxConfig({ dir, ...ports, ...variants[v], shutdownTimeout: opt.shutdownTimeout, h2: ports.h2 });
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

function startClients(opt, dir, port, counts, label) {
  const cp = spawnTracked(
    process.execPath,
    [path.join(REPO_DIR, 'scripts/lib/drill-clients.mjs'), JSON.stringify({ port, ...counts })],
    { cwd: dir, stdout: path.join(dir, `${label}.out`), stderr: path.join(dir, `${label}.out`), ipc: true },
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
    ready: () => next('ready', 60_000),
    /** Every idle keep-alive connection sends a request now: {answered, of}, or null. */
    async check() {
      const p = next('checked', 60_000);
      cp.send({ cmd: 'check' });
      return p;
    },
    async wsReconnect() {
      if (!counts.ws) return true;
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

/** The gRPC upstream and clients (scripts/lib/drill-grpc.mjs). */
function startGrpc(opt, dir, port) {
  const cp = spawnTracked(process.execPath, [path.join(REPO_DIR, 'scripts/lib/drill-grpc.mjs'), JSON.stringify({ port, lanes: opt.grpc })], {
    cwd: dir,
    stdout: path.join(dir, 'grpc.out'),
    stderr: path.join(dir, 'grpc.out'),
    ipc: true,
  });
  const inbox = [];
  const waiters = [];
  cp.on('message', (m) => {
    const i = waiters.findIndex((w) => w.types.includes(m?.type));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else inbox.push(m);
  });
  cp.once('exit', () => { for (const w of waiters.splice(0)) w.resolve(null); });
  const next = (types, ms) =>
    new Promise((resolve) => {
      const i = inbox.findIndex((m) => types.includes(m?.type));
      if (i >= 0) return resolve(inbox.splice(i, 1)[0]);
      if (cp.exitCode !== null || cp.signalCode !== null) return resolve(null);
      const w = { types, resolve: (v) => { clearTimeout(timer); resolve(v); } };
      const timer = setTimeout(() => {
        const k = waiters.indexOf(w);
        if (k >= 0) waiters.splice(k, 1);
        resolve(null);
      }, ms);
      waiters.push(w);
    });
  return {
    cp,
    next,
    stop() {
      const p = next(['result'], 90_000);
      cp.send({ cmd: 'stop' });
      return p;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/2 load: h2load runs back to back for the whole procedure (h2load does not reconnect after a GOAWAY, so one
// long run would lose every client at the first drain). "-n" runs sized to last about --h2-run each.

const H2_MAX_RUNS = 400; // bound: ~20 min of 3 s runs

function startH2Loop(h2loadBin, opt, dir, { label, name, url, tls }) {
  const c = opt.h2Clients;
  const m = opt.h2Streams;
  const minN = c * m * 4;
  const maxN = 2_000_000;
  let n = c * m * 100;
  let running = true;
  const runs = [];
  const lat = [];
  const failures = []; // {t, client, kind, detail}
  const addFailure = (f) => {
    if (failures.length < 200) failures.push({ client: name, ...f });
  };
  const loop = (async () => {
    for (let i = 1; running && i <= H2_MAX_RUNS && !cleanup.stopping; i++) {
      const base = path.join(dir, `h2load-${label}-${String(i).padStart(3, '0')}`);
      // -N: a connection silent for 20 s times its streams out (counted), instead of hanging the run
      const args = ['-n', String(n), '-c', String(c), '-m', String(m), '-N', '20', '--log-file', `${base}.log.tsv`, url];
      const t0 = Date.now();
      const r = await runCapture(h2loadBin, args, { timeoutMs: 90_000 });
      const t1 = Date.now();
      fs.writeFileSync(`${base}.txt`, `$ h2load ${args.join(' ')}\n# ${new Date(t0).toISOString()} .. ${new Date(t1).toISOString()}\n${r.stdout}${r.stderr}`);
      const p = parseH2load(r.stdout);
      const l = readH2loadLog(`${base}.log.tsv`, { maxBad: 100_000 });
      for (const x of l.lat) lat.push(x);
      const ok2 = p.ok ? p.status['2xx'] + p.status['3xx'] : 0;
      const run = {
        i,
        t0,
        t1,
        n,
        ok: p.ok,
        killed: !!r.signal,
        started: p.started ?? 0,
        done: p.done ?? 0,
        okStreams: ok2,
        failed: p.failed ?? 0,
        errored: p.errored ?? 0,
        timeout: p.timeout ?? 0,
        // every stream h2load sent that did not come back 2xx/3xx, whatever the reason ("started" also counts the
        // streams still queued in h2load when a GOAWAY came, which nghttp2 cancels unsent: logged with start 0)
        sentFailed: p.ok ? Math.max(0, p.started - ok2 - l.unsent) : 0,
        unsent: l.unsent,
        // sent streams whose connection died under them (not in the per-request log)
        lost: p.ok ? Math.max(0, p.started - p.done) : 0,
        badLogged: l.badCount,
        notSent: p.ok ? Math.max(0, p.total - p.started) : 0,
        goawayStops: p.goawayStops,
        idleClient: p.idleClient,
        proto: p.proto,
        rps: p.rps,
      };
      run.failures = run.sentFailed + (run.idleClient ? 1 : 0) + (p.ok ? 0 : 1);
      runs.push(run);
      const where = `run ${i} (${rel(t0)}..${rel(t1)})`;
      if (!p.ok) addFailure({ t: t1, kind: 'run without a result', detail: `${where}${r.signal ? `, killed (${r.signal}) after 90 s` : `, exit ${r.code}`}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}` });
      // one line per kind and run: first time, count, and how long after being sent those streams ended
      const byKind = new Map();
      for (const b of l.bad) {
        const kind = b.status === -1 ? 'streams reset/refused (h2load -1)' : `status ${b.status}`;
        if (!byKind.has(kind)) byKind.set(kind, []);
        byKind.get(kind).push(b);
      }
      for (const [kind, list] of byKind) {
        const ms = list.map((b) => b.ms).sort((x, y) => x - y);
        const sent = list.map((b) => b.t).sort((x, y) => x - y);
        addFailure({
          t: sent[0],
          kind: `${list.length} ${kind}`,
          detail: `${where}; sent ${rel(sent[0])}${sent.length > 1 ? `..${rel(sent.at(-1))}` : ''}, ended ${fmtMs(ms[0])}${ms.length > 1 ? `..${fmtMs(ms.at(-1))}` : ''} after being sent`,
        });
      }
      const unlogged = run.sentFailed - l.badCount;
      if (unlogged > 0)
        addFailure({ t: t1, kind: `${unlogged} streams never closed, their connection gone`, detail: `${where}: started ${run.started}, done ${run.done}; h2load cannot tell whether they were on the wire` });
      if (run.idleClient) addFailure({ t: t0, kind: 'a client completed nothing (connect/TLS/preface failure?)', detail: where });
      if (p.ok && p.proto && p.proto !== (tls ? 'h2' : 'h2c')) addFailure({ t: t0, kind: `negotiated ${p.proto}`, detail: where });
      if (!opt.keep && !run.sentFailed && !run.badLogged) fs.rmSync(`${base}.log.tsv`, { force: true }); // clean: not needed
      // size the next run from this one's rate, unless a drain stopped clients early (the rate is then too low)
      if (p.ok && p.rps > 0 && !p.goawayStops && p.seconds > 0.2) n = Math.min(maxN, Math.max(minN, Math.round(p.rps * (opt.h2Run / 1000))));
      if (!p.ok) await sleep(200);
    }
  })();
  return {
    label,
    name,
    runs,
    async stop() {
      running = false;
      const finished = await Promise.race([loop.then(() => true), sleep(100_000).then(() => false)]);
      lat.sort((a, b) => a - b);
      const sum = (k) => runs.reduce((acc, r) => acc + (typeof r[k] === 'boolean' ? (r[k] ? 1 : 0) : r[k]), 0);
      return {
        finished,
        runs: runs.length,
        started: sum('started'),
        okStreams: sum('okStreams'),
        failures: sum('failures'),
        sentFailed: sum('sentFailed'),
        badLogged: sum('badLogged'),
        lost: sum('lost'),
        failed: sum('failed'),
        errored: sum('errored'),
        timeout: sum('timeout'),
        notSent: sum('notSent'),
        unsent: sum('unsent'),
        goawayStops: sum('goawayStops'),
        idleRuns: sum('idleClient'),
        noResult: runs.filter((r) => !r.ok).length,
        p99: percentile(lat, 99),
        failureList: failures,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

/**
 * One whole drill against one proxy: start it, run the load across the upgrades and reloads, stop, then (baton)
 * the idle phase; returns the report lines and the figures the comparison of the two modes needs. `mode`: the
 * hand-off setting (baton), or null (nginx).
 */
async function runDrill(opt, tools, { dir, upPort, cert }, mode) {
  const { wrk, h2load, nginx } = tools;
  procedureFailures.length = 0;
  const loadStart = os.loadavg()[0].toFixed(2);
  const T1 = Date.now();
  const [port, adminPort, tlsPort, h2cPort, grpcPort] = await freePorts(5);
  const ports = { upPort, port, adminPort, h2: null, ppPort: null, grpcPort: opt.grpc ? grpcPort : 0 };
  const edgePorts = opt.edge ? await freePorts(3) : null;
  if (edgePorts) ports.ppPort = edgePorts[0];
  if (opt.h2) {
    // baton serves h2c on its main port (h2c: true); nginx 1.22 needs a port of its own for it
    ports.h2 = { tlsPort, h2cPort: opt.against === 'nginx' ? h2cPort : port, ...cert };
  }
  const listenPorts = opt.h2 ? [...new Set([port, ports.h2.tlsPort, ports.h2.h2cPort])] : [port];
  const handoff = mode === 'on';
  if (mode) event(`---- drill with drain.handoff: ${mode} (temp dir ${dir})`);

  const grpcChild = opt.grpc ? startGrpc(opt, dir, grpcPort) : null;
  if (grpcChild) {
    const m = await grpcChild.next(['listening', 'unavailable', 'start-failed'], 20_000);
    if (m?.type !== 'listening') {
      log(`gRPC clients off: ${m?.why ?? 'the gRPC upstream did not start'}`);
      ports.grpcPort = 0;
    }
  }
  const target = opt.against === 'nginx' ? makeNginx(opt, dir, ports, nginx) : makeBaton({ ...opt, handoff }, dir, ports);
  await target.start();
  const h2Targets = opt.h2
    ? [
        { label: 'tls', name: 'h2load TLS (h2)', url: `https://${HOST}:${ports.h2.tlsPort}/`, tls: true },
        { label: 'h2c', name: `h2load h2c${ports.h2.h2cPort === port ? ' (shared port)' : ''}`, url: `http://${HOST}:${ports.h2.h2cPort}/`, tls: false },
      ]
    : [];
  for (const h of h2Targets) {
    const r = await runCapture(h2load, ['-n', '20', '-c', '1', '-m', '1', h.url], { timeoutMs: 20_000 });
    const p = parseH2load(r.stdout);
    const want = h.tls ? 'h2' : 'h2c';
    if (!(p.ok && p.status['2xx'] === 20 && p.proto === want))
      die(`${h.url}: the h2load smoke check failed (${p.ok ? `${p.status['2xx']}/20 2xx, protocol ${p.proto}` : 'no result'}):\n${(r.stdout + r.stderr).trim().split('\n').slice(-8).join('\n')}`, 1);
  }

  // ---- load
  const url = `http://${HOST}:${port}/`;
  const wrkKa = startWrk(wrk, ['-t2', '-c32', '-d600s', '--timeout', '10s', '--latency', url], dir, 'keepalive');
  const wrkClose = startWrk(wrk, ['-t1', '-c8', '-d600s', '--timeout', '10s', '--latency', '-H', 'Connection: close', url], dir, 'close');
  const clients = startClients(opt, dir, port, { slow: opt.slow, uploaders: opt.uploaders, ws: opt.ws, idle: opt.idle }, 'clients');
  if (!(await clients.ready())) die(`the Node clients did not start: ${tail(path.join(dir, 'clients.out'))}`);
  const h2Loops = h2Targets.map((h) => startH2Loop(h2load, opt, dir, h));
  const edgeWrk = [];
  if (edgePorts) {
    const [ppPort, v2Port, v1Port] = edgePorts;
    if (!(await startHaproxy(dir, { v2Port, v1Port, ppPort }))) die(`haproxy did not start: ${tail(path.join(dir, 'haproxy.out'))}`);
    edgeWrk.push(['wrk keep-alive -c8 gzip via HAProxy, PROXY v2, unix', startWrk(wrk, ['-t1', '-c8', '-d600s', '--timeout', '10s', '--latency', '-H', 'Accept-Encoding: gzip', `http://${HOST}:${v2Port}/`], dir, 'edge-unix')]);
    edgeWrk.push(['wrk Connection: close -c4 via HAProxy, PROXY v1', startWrk(wrk, ['-t1', '-c4', '-d600s', '--timeout', '10s', '--latency', '-H', 'Connection: close', `http://${HOST}:${v1Port}/`], dir, 'edge-v1')]);
  }
  if (grpcChild && ports.grpcPort) {
    const p = grpcChild.next(['ready', 'start-failed'], 30_000);
    grpcChild.cp.send({ cmd: 'start', target: `${HOST}:${ports.h2.h2cPort}` });
    const m = await p;
    if (m?.type !== 'ready') die(`the gRPC clients did not start: ${m?.why ?? 'no answer'}; ${tail(path.join(dir, 'grpc.out'))}`);
  }
  event(
    `load running: wrk -c32 keep-alive, wrk -c8 Connection: close, ${opt.slow} /slow in flight, ${opt.uploaders} upload loops, ${opt.ws} WebSockets, ${opt.idle} idle keep-alive connections` +
      (h2Loops.length ? `, h2load -c${opt.h2Clients} -m${opt.h2Streams} over ${h2Targets.map((h) => h.url).join(' and ')}` : '') +
      (ports.grpcPort ? `, gRPC ${opt.grpc} server-streaming + ${opt.grpc} bidirectional lanes + 1 unary lane` : ''),
  );
  await sleep(opt.warm);

  // ---- upgrades, then reloads
  const cycles = [];
  const reloads = [];
  // When a generation starts draining: wait until its workers no longer hold the listening socket (so a new
  // connection cannot land on them). Without hand-off, then move the WebSockets to new connections, so that the old
  // generation is not kept alive by them until shutdown_timeout (which would end them: nginx's behaviour, measured
  // in the idle phase instead). With hand-off they stay where they are: the proxy moves them.
  const onDrainStart = async (oldWorkers, step) => {
    let ms = 0;
    for (const p of listenPorts) {
      const t = await waitStopAccepting(oldWorkers, p, 10_000);
      if (t === null) {
        ms = null;
        procFail(`${step}: old workers ${oldWorkers.join(' ')} still hold the listening socket of port ${p} 10 s after the drain began`);
        break;
      }
      ms += t;
    }
    if (ms !== null) event(`${step}: old workers ${oldWorkers.join(' ')} stopped accepting on ${listenPorts.length > 1 ? `ports ${listenPorts.join(', ')}` : `port ${port}`} (${ms} ms)${handoff ? '' : '; reconnecting WebSockets'}`);
    if (!handoff && !(await clients.wsReconnect())) procFail(`${step}: WebSocket clients did not report their reconnection within 20 s`);
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
  const grpcStop = grpcChild && ports.grpcPort ? grpcChild.stop() : Promise.resolve(null);
  const [ka, close, cres, gres, ...h2res] = await Promise.all([wrkKa.stop(), wrkClose.stop(), clients.stop(), grpcStop, ...h2Loops.map((l) => l.stop())]);
  const edgeRes = await Promise.all(edgeWrk.map(([, w]) => w.stop()));
  event('load stopped');
  const idle = opt.big && opt.against === 'baton' && !procedureFailures.length ? await idlePhase(opt, target, dir, port, mode) : null;
  await target.stop();

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
    if (!w.ok) lateFail(`${name}: wrk printed no result`);
  };
  wrkRow('wrk keep-alive -c32', ka);
  wrkRow('wrk Connection: close -c8', close);
  edgeWrk.forEach(([name], i) => wrkRow(name, edgeRes[i]));
  if (!cres) lateFail('the Node clients returned no result');
  const cs = cres?.stats ?? {};
  const labels = { slow: `slow GET (${opt.slow} in flight)`, upload: `POST upload 256 KiB x${opt.uploaders}`, ws: `WebSocket x${opt.ws} (msgs)`, idle: `idle keep-alive x${opt.idle}` };
  for (const k of ['slow', 'upload', 'ws', 'idle']) {
    const s = cs[k];
    if (!s || (k === 'idle' && !opt.idle)) continue;
    total += s.failures;
    totalReq += s.requests;
    rows.push([labels[k], s.requests, s.failures, fmtMs(s.p99), describeClient(s)]);
  }
  h2res.forEach((h, idx) => {
    const name = `${h2Targets[idx].name} -c${opt.h2Clients} -m${opt.h2Streams}`;
    total += h.failures;
    totalReq += h.started - h.unsent;
    if (!h.finished) lateFail(`${name}: the h2load loop did not finish within 100 s of the stop`);
    const kinds = [];
    if (h.sentFailed) kinds.push(`streams not 2xx/3xx ${h.sentFailed} (sent and reset/refused/bad status: ${h.badLogged}; never closed, connection gone: ${h.sentFailed - h.badLogged})`);
    if (h.idleRuns) kinds.push(`runs with a client that completed nothing ${h.idleRuns}`);
    if (h.noResult) kinds.push(`runs without a result ${h.noResult}`);
    rows.push([
      name,
      h.started - h.unsent,
      h.failures,
      fmtMs(h.p99),
      `${kinds.join(', ') || 'ok'} (${h.runs} runs; h2load: failed ${h.failed}, errored ${h.errored}, timeout ${h.timeout}; ` +
        `clients stopped by GOAWAY ${h.goawayStops}, requests not sent after GOAWAY ${h.notSent + h.unsent}` +
        `${h.unsent ? ` of which ${h.unsent} queued and cancelled unsent` : ''})`,
    ]);
  });
  let spanned = 0;
  if (grpcChild && ports.grpcPort) {
    if (!gres) lateFail('the gRPC clients returned no result');
    const g = gres?.stats ?? {};
    const names = { stream: `gRPC server-streaming x${opt.grpc} (2 s calls)`, bidi: `gRPC bidirectional x${opt.grpc} (10 round trips)`, unary: 'gRPC unary x1' };
    for (const k of ['stream', 'bidi', 'unary']) {
      const st = g[k];
      if (!st) continue;
      total += st.failures;
      totalReq += st.requests;
      rows.push([names[k], st.requests, st.failures, fmtMs(st.p99), Object.entries(st.kinds).map(([k2, n]) => `${k2} ${n}`).join(', ') || 'ok']);
    }
    // Streams in flight when a generation began to drain: they had to finish on the old one.
    const drains = events.filter((e) => e.what.includes('stopped accepting')).map((e) => e.t);
    spanned = (gres?.calls ?? []).filter(([a, b]) => drains.some((d) => a < d && d < b)).length;
  }
  total += procedureFailures.length;
  rows.push(['procedure (upgrades/reloads)', `${cycles.length}+${reloads.length}`, procedureFailures.length, '', procedureFailures.length ? 'see below' : 'ok']);
  rows.push(['TOTAL', totalReq, total, '', '']);

  const out = [];
  out.push('');
  out.push(
    `scripts/upgrade-drill against ${target.name}${mode ? ` with drain.handoff: ${mode}` : ''}: ${cycles.length}/${opt.cycles} upgrades (USR2 -> WINCH -> QUIT), ${reloads.length}/${opt.reloads} HUP reloads, ` +
      `shutdown_timeout ${opt.shutdownTimeout / 1000}s, ${((Date.now() - T1) / 1000).toFixed(0)} s in all, ${os.cpus().length} CPUs, ` +
      `load average at start/end ${loadStart} / ${os.loadavg()[0].toFixed(2)}` +
      (opt.h2 ? `\nlisteners: HTTP/1.1 ${port}${ports.h2.h2cPort === port ? ' (+ h2c)' : `, h2c ${ports.h2.h2cPort}`}, TLS (h2, http/1.1) ${ports.h2.tlsPort}` : ''),
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
  if (spanned) out.push('', `gRPC: ${spanned} streaming calls were in flight when a generation began to drain (they finished on the old one).`);
  if (idle) out.push('', ...idle.report);
  const fails = [
    ...(cres?.failures ?? []),
    ...(gres?.failures ?? []),
    ...h2res.flatMap((h) => h.failureList),
    ...(idle?.failureList ?? []),
  ]
    .map((f) => ({ ...f, what: `${f.client}: ${f.kind}${f.detail ? ` (${f.detail})` : ''}` }))
    .concat(procedureFailures.map((f) => ({ ...f, what: `procedure: ${f.what}` })))
    .sort((a, b) => a.t - b.t);
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
  if (idle) {
    total += idle.failures;
    totalReq += idle.requests;
  }
  const el = countErrorLines(target.errorLog);
  const handoffs = target.name === 'baton' ? handoffTally(target.errorLog) : null;
  if (handoffs) {
    const stayed = Object.entries(handoffs.stayed).map(([k, n]) => `${k} ${n}`).join(', ');
    out.push('', `hand-offs (whole run): http1 ${handoffs.moved.http1}, websocket ${handoffs.moved.websocket}; stayed (failed hand-offs): ${stayed || 'none'}`);
  }
  out.push('');
  out.push(`${target.name} error log: ${el.count} warn/error lines (${el.errors} at error level or above)${el.count ? ', grouped:' : ''}`);
  for (const [k, n] of el.groups.slice(0, 10)) out.push(`  ${String(n).padStart(5)} x ${k}`);
  if (el.count) out.push(`  (full lines in ${target.errorLog})`);
  out.push('');
  out.push(`${total === 0 ? 'result: zero failures' : `result: ${total} failures`} (${totalReq} requests)${mode ? ` with drain.handoff: ${mode}` : ''}`);
  if (h2res.length)
    out.push(
      'h2load rows: requests = streams sent; failures = sent streams not answered 2xx/3xx + runs where a client completed nothing.',
      'h2load\'s own "failed"/"errored" also count the requests a client did not send because a GOAWAY stopped it (shown apart).',
    );
  const info = (s, key) => s?.info?.[key] ?? 0;
  const summary = {
    mode,
    total,
    requests: totalReq,
    idleClosedWhileIdle: info(cs.idle, 'closed by the server while idle'),
    idleClosedUnderRequest: cs.idle?.kinds?.['connection closed under a request'] ?? 0,
    wsReconnects: info(cs.ws, 'reconnects forced by the drill') + info(cs.ws, 'reconnects after a server close'),
    wsClosedByServer: info(cs.ws, 'closed by server'),
    wsOutOfSequence: cs.ws?.kinds?.['echo out of sequence'] ?? 0,
    upgradeDrain: cycles.map((c) => c.drain),
    idle: idle?.summary ?? null,
    errorLines: el.count,
    handoffFailures: handoffs ? Object.values(handoffs.stayed).reduce((a, b) => a + b, 0) : null,
  };
  return { out, total, summary };
}

/** A Node client's row details: its failures by kind, then what it saw of the server (closes, reconnects). */
function describeClient(s) {
  const kinds = Object.entries(s.kinds).map(([k, n]) => `${k} ${n}`);
  const info = Object.entries(s.info).map(([k, n]) => `${k} ${n}`);
  return [kinds.join(', ') || 'ok', info.length ? `(${info.join(', ')})` : '(no connection closed by the server)'].join(' ');
}

/**
 * The idle phase (baton): hundreds of idle keep-alive connections and WebSockets open, no other load, shutdown_timeout
 * raised (default 60s); one HUP and one upgrade, each timed from the new generation ready to the old one gone. Without
 * hand-off the WebSockets pin the old workers until shutdown_timeout, which then closes them; with it they move.
 */
async function idlePhase(opt, target, dir, port, mode) {
  event(`idle phase: shutdown_timeout ${opt.bigShutdownTimeout / 1000}s, ${opt.bigWs} WebSockets, ${opt.bigIdle} idle keep-alive connections (a request every ${opt.bigPause[0] / 1000}-${opt.bigPause[1] / 1000} s each)`);
  target.shutdownTimeout = opt.bigShutdownTimeout;
  // The generation that will drain must have the raised shutdown_timeout: a reload to it first, untimed.
  const setup = await target.reload(0, async () => 0, { waitGone: true });
  if (!setup) return null;
  const clients = startClients(opt, dir, port, { slow: 0, uploaders: 0, ws: opt.bigWs, idle: opt.bigIdle, wsIntervalMs: 1000, idleMinMs: opt.bigPause[0], idleMaxMs: opt.bigPause[1] }, 'idle-clients');
  if (!(await clients.ready())) {
    procFail(`idle phase: the clients did not start: ${tail(path.join(dir, 'idle-clients.out'))}`);
    return null;
  }
  event('idle phase: clients connected');
  await sleep(2000);
  const steps = [];
  const check = async (what) => {
    const c = await clients.check();
    if (!c || c.answered !== c.of) procFail(`idle phase, after the ${what}: ${c ? `${c.answered} of ${c.of}` : 'no'} idle connections answered a request`);
    else event(`idle phase, after the ${what}: all ${c.of} idle connections answered a request`);
  };
  const reload = await target.reload(1, async () => 0, { waitGone: true });
  if (reload) {
    steps.push({ step: 'HUP', ready: reload.ms, gone: reload.gone });
    await check('reload');
  }
  const upgrade = !procedureFailures.length ? await target.upgrade('idle', async () => 0) : null;
  if (upgrade) {
    steps.push({ step: 'USR2 + WINCH', ready: upgrade.ready, gone: upgrade.drain });
    await check('upgrade');
  }
  const res = await clients.stop();
  const cs = res?.stats ?? {};
  const rows = [];
  let failures = 0;
  let requests = 0;
  for (const [k, label] of [['idle', `idle keep-alive x${opt.bigIdle}`], ['ws', `WebSocket x${opt.bigWs} (msgs)`]]) {
    const s = cs[k];
    if (!s) continue;
    failures += s.failures;
    requests += s.requests;
    rows.push([label, s.requests, s.failures, fmtMs(s.p99), describeClient(s)]);
  }
  if (!res) {
    failures++;
    lateFail('idle phase: the clients returned no result');
  }
  const report = [
    `idle phase (shutdown_timeout ${opt.bigShutdownTimeout / 1000}s, drain.handoff: ${mode}):`,
    table(['step', 'signal -> new generation ready', 'new ready -> old generation gone'], steps.map((x) => [x.step, fmtMs(x.ready), fmtMs(x.gone)])),
    '',
    table(['client', 'requests', 'failures', 'p99', 'details'], rows, { leftLast: true }),
  ];
  const info = (s, key) => s?.info?.[key] ?? 0;
  const summary = {
    steps,
    idleClosedWhileIdle: info(cs.idle, 'closed by the server while idle'),
    idleClosedUnderRequest: cs.idle?.kinds?.['connection closed under a request'] ?? 0,
    wsReconnects: info(cs.ws, 'reconnects after a server close'),
    wsClosedByServer: info(cs.ws, 'closed by server'),
    failures,
  };
  return { report, summary, failures, requests, failureList: res?.failures ?? [] };
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const tools = { wrk: which('wrk'), h2load: which('h2load'), nginx: which('nginx') || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null) };
  if (!tools.wrk) die('wrk is not installed (apt-get install -y wrk)');
  if (opt.h2 && !tools.h2load) die('h2load is not installed (apt-get install -y nghttp2-client), or run with --no-h2');
  if (opt.h2 && !which('openssl')) die('openssl is not installed (needed for the TLS certificate), or run with --no-h2');
  if (opt.against === 'nginx' && !tools.nginx) die('nginx is not installed (apt-get install -y nginx-light)');
  if (opt.edge && (opt.against !== 'baton' || !which('haproxy'))) die('--edge needs --against baton and haproxy (apt-get install -y haproxy)');

  const dir = mkTempDir(`${opt.against}-drill-`);
  log(`temp dir: ${dir}`);
  const [upPort] = await freePorts(1);
  const cert = opt.h2 ? await makeCert(dir) : null;
  spawnTracked(process.execPath, [path.join(REPO_DIR, 'scripts/lib/drill-upstream.mjs'), String(upPort)], {
    cwd: dir,
    stdout: path.join(dir, 'upstream.out'),
    stderr: path.join(dir, 'upstream.out'),
  });
  if (!(await waitFor(async () => (await httpGet(upPort, '/'))?.status === 200, 10_000, 100))) die(`upstream did not start: ${tail(path.join(dir, 'upstream.out'))}`);

  const modes = opt.against === 'nginx' ? [null] : opt.handoff === 'both' ? ['off', 'on'] : [opt.handoff];
  const runs = [];
  for (const mode of modes) {
    const sub = mode ? path.join(dir, `handoff-${mode}`) : dir;
    fs.mkdirSync(sub, { recursive: true });
    const r = await runDrill(opt, tools, { dir: sub, upPort, cert }, mode);
    runs.push(r);
    process.stdout.write(r.out.join('\n') + '\n');
  }
  await cleanup.run();
  const total = runs.reduce((n, r) => n + r.total, 0);
  // Without hand-off, idle keep-alive clients meet the keep-alive race (a request sent as the server closes): the
  // very failures the hand-off removes, shown, not held against the run. Any other failure is.
  const races = (r) => (r.summary.mode === 'off' ? r.summary.idleClosedUnderRequest + (r.summary.idle?.idleClosedUnderRequest ?? 0) : 0);
  const held = runs.reduce((n, r) => n + r.total - races(r), 0);
  const out = [];
  if (runs.length > 1) out.push('', ...compare(runs.map((r) => r.summary)));
  const keep = opt.keep || total > 0 || runs.some((r) => r.summary.errorLines > 0);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  out.push('');
  out.push(keep ? `logs kept in ${dir}` : `temp dir removed (use --keep to keep it)`);
  const perMode = runs.map((r) => `${r.total === 0 ? 'zero failures' : `${r.total} failures`}${r.summary.mode ? ` with drain.handoff: ${r.summary.mode}` : ''}`).join('; ');
  const shown = total - held;
  out.push(`RESULT: ${perMode}${shown ? ` (of which ${shown} idle keep-alive requests met a server close without hand-off: the race the hand-off removes)` : ''}`);
  process.stdout.write(out.join('\n') + '\n');
  return held === 0 ? 0 : 1;
}

/** The two modes side by side, with the hand-off's targets. */
function compare(summaries) {
  const by = (f) => summaries.map((s) => f(s));
  const ms = (v) => (v === null || v === undefined ? 'n/a' : fmtMs(v));
  const step = (s, name) => s.idle?.steps.find((x) => x.step === name)?.gone ?? null;
  const rows = [
    ['failed requests, every client', ...by((s) => s.total), '0'],
    ['idle keep-alive connections closed by the server while idle (load phase)', ...by((s) => s.idleClosedWhileIdle), '0'],
    ['  ... and closed under a request (the keep-alive race)', ...by((s) => s.idleClosedUnderRequest), '0'],
    ['WebSocket reconnects (load phase)', ...by((s) => s.wsReconnects), '0'],
    ['WebSocket echoes out of sequence', ...by((s) => s.wsOutOfSequence), '0'],
    ['failed hand-offs (whole run; by reason above)', ...by((s) => s.handoffFailures ?? 'n/a'), '0'],
    ['upgrades: new master ready -> old workers gone (max)', ...by((s) => ms(s.upgradeDrain.length ? Math.max(...s.upgradeDrain) : null)), ''],
    ['idle phase: idle keep-alive connections closed while idle', ...by((s) => s.idle?.idleClosedWhileIdle ?? 'n/a'), '0'],
    ['  ... and closed under a request (the keep-alive race)', ...by((s) => s.idle?.idleClosedUnderRequest ?? 'n/a'), '0'],
    ['idle phase: WebSockets closed by the server', ...by((s) => s.idle?.wsClosedByServer ?? 'n/a'), '0'],
    ['idle phase: HUP, new generation ready -> old one gone', ...by((s) => ms(step(s, 'HUP'))), '<= 2 s'],
    ['idle phase: upgrade, new master ready -> old workers gone', ...by((s) => ms(step(s, 'USR2 + WINCH'))), '<= 2 s'],
  ];
  return ['hand-off off vs on:', table(['', ...summaries.map((s) => `drain.handoff: ${s.mode}`), 'target (on)'], rows)];
}


runMain('upgrade-drill', main);
