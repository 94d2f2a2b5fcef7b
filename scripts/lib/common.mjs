// Shared helpers for scripts/bench and scripts/upgrade-drill: process tracking with guaranteed cleanup,
// free loopback ports, bounded waits, /proc inspection, wrk output parsing, small formatting helpers.
// Everything binds to 127.0.0.1; every wait has a deadline.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export const HOST = '127.0.0.1';
export const SCRIPTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(SCRIPTS_DIR, '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function log(...args) {
  const t = new Date().toISOString().slice(11, 23);
  process.stderr.write(`[${t}] ${args.join(' ')}\n`);
}

export function die(msg, code = 2) {
  const e = new Error(msg);
  e.exitCode = code;
  throw e;
}

/** "10s" | "500ms" | "2m" | "3" (seconds) -> milliseconds */
export function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(s).trim());
  if (!m) die(`bad duration: ${s}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

export function which(cmd) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

export function mkTempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // nginx workers run as an unprivileged user when started as root: they must reach temp files in here.
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Ask the kernel for n distinct free loopback ports (they are free now; we bind them right after). */
export async function freePorts(n) {
  const servers = [];
  const ports = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise((res, rej) => {
        s.once('error', rej);
        s.listen(0, HOST, res);
      });
      servers.push(s);
      ports.push(s.address().port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
  return ports;
}

// ---------------------------------------------------------------------------------------------------------
// /proc helpers

/** {pid, ppid, state, pgrp} or null when gone. A zombie counts as gone for isAlive(). */
export function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
  } catch {
    return null;
  }
}

export function isAlive(pid) {
  if (!pid || pid <= 0) return false;
  const st = procStat(pid);
  return !!st && st.state !== 'Z' && st.state !== 'X';
}

export function allProcs() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st && st.state !== 'Z') out.push(st);
  }
  return out;
}

export function childrenOf(pid, procs = allProcs()) {
  return procs.filter((p) => p.ppid === pid).map((p) => p.pid);
}

export function descendantsOf(pids, procs = allProcs()) {
  const out = new Set();
  let frontier = [...pids];
  for (let depth = 0; depth < 6 && frontier.length; depth++) {
    const next = [];
    for (const p of procs) if (frontier.includes(p.ppid) && !out.has(p.pid)) next.push(p.pid);
    next.forEach((p) => out.add(p));
    frontier = next;
  }
  return [...out];
}

export function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

export function readPidFile(file) {
  try {
    const n = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export function signal(pid, sig) {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Poll fn() every `every` ms until it returns a truthy value or `ms` elapse. Returns the value or null. */
export async function waitFor(fn, ms, every = 100) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < Math.ceil(ms / every) + 2; i++) {
    let v;
    try {
      v = await fn();
    } catch {
      v = null;
    }
    if (v) return v;
    if (Date.now() >= deadline) return null;
    await sleep(every);
  }
  return null;
}

export const waitExit = (pid, ms) => waitFor(() => !isAlive(pid), ms, 50);

export function waitPort(port, ms) {
  return waitFor(
    () =>
      new Promise((res) => {
        const s = net.connect(port, HOST);
        s.once('connect', () => {
          s.destroy();
          res(true);
        });
        s.once('error', () => res(false));
        s.setTimeout(1000, () => {
          s.destroy();
          res(false);
        });
      }),
    ms,
    100,
  );
}

/** One short HTTP request; resolves {status, body} or null on any error. */
export function httpGet(port, urlPath, { method = 'GET', timeout = 2000, headers = {} } = {}) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: HOST, port, path: urlPath, method, headers: { connection: 'close', ...headers }, agent: false, timeout },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve(null));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(null));
    req.end();
  });
}

export async function httpJson(port, urlPath, opts) {
  const r = await httpGet(port, urlPath, opts);
  if (!r || r.status !== 200) return null;
  try {
    return JSON.parse(r.body);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup: every process we start is registered here and stopped on normal exit, error, Ctrl-C or TERM.

class Cleanup {
  constructor() {
    this.children = new Set(); // ChildProcess objects
    this.pids = new Set(); // pids we caused to exist but that are not our children (daemons, re-exec'd masters)
    this.pidFiles = new Set(); // pid files whose current content names a process we started
    this.groups = new Set(); // process-group ids of detached children (their whole tree)
    this.hooks = []; // extra async hooks, run first
    this.running = null;
    this.installed = false;
  }

  install() {
    if (this.installed) return;
    this.installed = true;
    let signals = 0;
    const onSignal = (sig) => {
      signals++;
      if (signals > 1) {
        this.killAllSync('SIGKILL');
        process.exit(130);
      }
      log(`${sig} received: stopping everything we started (again to force)`);
      this.run().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGHUP', () => onSignal('SIGHUP'));
    // Last resort when the process exits without having run the async cleanup (e.g. process.exit in a crash).
    process.on('exit', () => this.killAllSync('SIGKILL'));
  }

  addChild(cp) {
    this.children.add(cp);
    if (cp.pid) this.groups.add(cp.pid); // spawned detached: pgid == pid
    cp.once('exit', () => this.children.delete(cp));
    return cp;
  }
  addPid(pid) {
    if (pid) this.pids.add(pid);
  }
  addPidFile(f) {
    this.pidFiles.add(f);
  }
  addHook(fn) {
    this.hooks.push(fn);
  }

  /** Every live process we know about, with descendants. */
  known() {
    const roots = new Set();
    for (const cp of this.children) if (cp.pid && cp.exitCode === null && cp.signalCode === null) roots.add(cp.pid);
    for (const p of this.pids) roots.add(p);
    for (const f of this.pidFiles) {
      const p = readPidFile(f);
      if (p) roots.add(p);
    }
    const procs = allProcs();
    for (const g of this.groups) for (const p of procs) if (p.pgrp === g && p.pid !== process.pid) roots.add(p.pid);
    const all = new Set([...roots, ...descendantsOf([...roots], procs)]);
    all.delete(process.pid);
    return { roots: [...roots].filter(isAlive), all: [...all].filter(isAlive) };
  }

  killAllSync(sig) {
    try {
      for (const p of this.known().all) signal(p, sig);
    } catch {}
  }

  run() {
    this.stopping = true; // from now on nothing new is started (see spawnTracked / runCapture)
    if (!this.running) this.running = this._run();
    return this.running;
  }

  async _run() {
    for (const h of this.hooks.splice(0)) {
      try {
        await Promise.race([h(), sleep(5000)]);
      } catch {}
    }
    const { roots, all } = this.known();
    if (all.length === 0) return;
    // Masters first (TERM = fast stop for baton and nginx), then anything still there gets KILL.
    for (const p of roots) signal(p, 'SIGTERM');
    await waitFor(() => all.every((p) => !isAlive(p)), 5000, 100);
    const left = all.filter(isAlive);
    for (const p of left) signal(p, 'SIGKILL');
    if (left.length) await waitFor(() => left.every((p) => !isAlive(p)), 2000, 50);
    const still = this.known().all;
    if (still.length) log(`warning: processes still alive after cleanup: ${still.join(' ')}`);
  }
}

export const cleanup = new Cleanup();

/** Run a script's `main` (resolving to an exit code), clean up what it started, and exit with its code. */
export function runMain(name, main) {
  main().then(
    async (code) => {
      await cleanup.run();
      process.exit(code);
    },
    async (err) => {
      process.stderr.write(`${name}: ${err.exitCode ? err.message : err.stack}\n`);
      await cleanup.run();
      process.exit(err.exitCode || 1);
    },
  );
}

/** `env` (default: this process's) with `extra` added to NODE_OPTIONS, after the options already there. */
export function withNodeOptions(extra, env = process.env) {
  return { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, extra].filter(Boolean).join(' ') };
}

/**
 * Spawn a tracked child in its own process group (so a terminal Ctrl-C reaches only us and we decide the order).
 * stdout/stderr go to files if given (paths), else are ignored.
 */
export function spawnTracked(cmd, args, { cwd, env, stdout, stderr, ipc = false } = {}) {
  if (cleanup.stopping) die('stopping: not starting anything new', 130);
  const out = stdout ? fs.openSync(stdout, 'a') : 'ignore';
  const err = stderr ? (stderr === stdout ? out : fs.openSync(stderr, 'a')) : 'ignore';
  const stdio = ['ignore', out, err];
  if (ipc) stdio.push('ipc');
  const cp = spawn(cmd, args, { cwd, env: env ?? process.env, stdio, detached: true });
  if (typeof out === 'number') fs.closeSync(out);
  if (typeof err === 'number' && err !== out) fs.closeSync(err);
  cleanup.addChild(cp);
  cp.on('error', (e) => log(`cannot start ${cmd}: ${e.message}`));
  return cp;
}

/** Run a command to completion, capturing output (bounded by timeoutMs). */
export function runCapture(cmd, args, { timeoutMs = 60_000, cwd, env } = {}) {
  return new Promise((resolve) => {
    if (cleanup.stopping) return resolve({ code: 130, stdout: '', stderr: 'stopping: not started' });
    const cp = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    cleanup.addChild(cp);
    let stdout = '';
    let stderr = '';
    cp.stdout.on('data', (d) => (stdout += d));
    cp.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => signal(cp.pid, 'SIGKILL'), timeoutMs);
    cp.on('error', (e) => {
      clearTimeout(t);
      resolve({ code: 127, stdout, stderr: stderr + e.message });
    });
    cp.on('close', (code, sig) => {
      clearTimeout(t);
      resolve({ code: code ?? 128, signal: sig, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// wrk

/** Convert "1.23ms" / "850.00us" / "2.01s" / "1.5m" to milliseconds. */
export function wrkTimeToMs(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000, h: n * 3_600_000 }[m[2]];
}

export function parseWrk(text) {
  const r = {
    requests: null,
    rps: null,
    p50: null,
    p75: null,
    p90: null,
    p99: null,
    socket: { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: 0,
    ok: false,
  };
  let m;
  if ((m = /(\d+) requests in ([\d.]+\w+),/.exec(text))) r.requests = Number(m[1]);
  if ((m = /Requests\/sec:\s+([\d.]+)/.exec(text))) r.rps = Number(m[1]);
  for (const [k, pct] of [
    ['p50', '50'],
    ['p75', '75'],
    ['p90', '90'],
    ['p99', '99'],
  ]) {
    const re = new RegExp(`^\\s+${pct}(?:\\.000)?%\\s+([\\d.]+\\w+)`, 'm');
    if ((m = re.exec(text))) r[k] = wrkTimeToMs(m[1]);
  }
  if ((m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)))
    r.socket = { connect: +m[1], read: +m[2], write: +m[3], timeout: +m[4] };
  if ((m = /Non-2xx or 3xx responses: (\d+)/.exec(text))) r.non2xx = Number(m[1]);
  r.socketErrors = r.socket.connect + r.socket.read + r.socket.write + r.socket.timeout;
  r.ok = r.requests !== null && r.rps !== null;
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// formatting

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
  if (ms < 1) return `${(ms * 1000).toFixed(0)}us`;
  if (ms < 100) return `${ms.toFixed(2)}ms`;
  if (ms < 10_000) return `${ms.toFixed(0)}ms`;
  return `${(ms / 1000).toFixed(1)}s`;
}

export function table(header, rows, { leftLast = false } = {}) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c ?? '')));
  const w = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const last = header.length - 1;
  const line = (r) => r.map((c, i) => (i === 0 || (i === last && leftLast) ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(all[0]), w.map((n) => '-'.repeat(n)).join('  '), ...all.slice(1).map(line)].join('\n');
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// ---------------------------------------------------------------------------------------------------------
// nginx

export const NGINX_TEMP_PATHS = (dir) => {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return `
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;`;
};

/** The compressed rows' page (scripts/bench's gzip row, bench-ab's BENCH_GZIP): 8 KiB of HTML, a static file. */
export const TEXT_PAGE = Array.from({ length: 160 }, (_, i) => `<li><a href="/items/${i}">item ${i}</a> some text</li>\n`).join('').slice(0, 8192);

/** A loopback nginx (1 worker) answering 200 "hello\n" on `port` (and TEXT_PAGE as text/html at /text), its files
 * in `dir`: the upstream of the A/B and profiling scripts, which measure the proxy, not the upstream. */
/** `http2`: the upstream speaks HTTP/2 only (h2c, "listen http2"), for baton's `protocol: http2`. */
export function startHelloNginx(dir, port, { http2 = false } = {}) {
  fs.writeFileSync(`${dir}/text.html`, TEXT_PAGE);
  fs.writeFileSync(`${dir}/up.conf`, `daemon off; worker_processes 1; pid ${dir}/up.pid; error_log ${dir}/up-error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; ${NGINX_TEMP_PATHS(dir + '/tmp')}
  server { listen ${HOST}:${port}${http2 ? ' http2' : ''}; location / { default_type text/plain; return 200 "hello\\n"; }
    location = /text { default_type text/html; alias ${dir}/text.html; } } }\n`);
  return spawnTracked('nginx', ['-p', dir + '/', '-c', `${dir}/up.conf`], { cwd: dir });
}

/**
 * baton's config in front of an upstream on `upPort` (startHelloNginx, or a script's own): one listener, access log
 * on. `h2c`: HTTP/1.1 and h2c on that port (default) or HTTP/1.1 only; `compress`: the route's compress key
 * (default false; null leaves it to baton's default); `top`: more top-level lines (e.g. "shutdown_timeout: 5s");
 * `http2`: the upstream is spoken to over HTTP/2 (`protocol: http2`); `tls`: {cert, key} (makeCert) for a TLS listener
 * (HTTP/2 or HTTP/1.1 by ALPN) instead of a cleartext one.
 */
export function helloBatonYaml({ name = 'baton', workers, port, admin, upPort, h2c = true, compress = false, top = '', http2 = false, tls = null }) {
  const logs = name === 'baton' ? { error: 'error.log', access: 'access.log' } : { error: `${name}-error.log`, access: `${name}-access.log` };
  return `pid_file: ${name}.pid
workers: ${workers}
${top ? `${top.trimEnd()}\n` : ''}log: { level: info, error: ${logs.error}, access: ${logs.access} }
admin: { listen: ${HOST}:${admin} }
listeners:
  - listen: ${HOST}:${port}
${tls ? `    tls: { cert: "${tls.cert}", key: "${tls.key}" }\n` : h2c ? '    h2c: true\n' : ''}upstreams:
  app:
${http2 ? '    protocol: http2\n' : ''}    targets: [ { url: "http://${HOST}:${upPort}" } ]
routes:
  - path: /
    upstream: app
${compress === null ? '' : `    compress: ${compress}\n`}`;
}

/** nginx -t on a config; returns null when fine or the error text. */
export async function nginxTest(nginxBin, conf, prefix) {
  const r = await runCapture(nginxBin, ['-t', '-q', '-p', prefix + '/', '-c', conf, '-e', path.join(prefix, 'nginx-t.log')], {
    timeoutMs: 15_000,
  });
  return r.code === 0 ? null : (r.stderr + r.stdout).trim() || `nginx -t exited ${r.code}`;
}

export function tail(file, n = 20) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    return lines.slice(-n).join('\n');
  } catch {
    return '';
  }
}

export function nodeVersionOk() {
  return Number(process.versions.node.split('.')[0]) >= 20;
}

export function execOk(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** warn/error/fatal lines of a pino (JSON) or plain-text log: count and a few samples. */
export function countErrorLines(file) {
  let count = 0;
  let errors = 0;
  const sample = [];
  const groups = new Map();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      let lvl = null;
      try {
        const j = JSON.parse(line);
        lvl = typeof j.level === 'number' ? (j.level >= 50 ? 'error' : j.level >= 40 ? 'warn' : null) : j.level;
      } catch {
        const m = /\[(warn|error|crit|alert|emerg)\]/.exec(line); // nginx
        lvl = m ? (m[1] === 'warn' ? 'warn' : 'error') : /^\d{4}\/\d\d\/\d\d /.test(line) ? null : /\b(error|warn)/i.test(line) ? 'error' : null;
      }
      if (lvl === 'error' || lvl === 'warn' || lvl === 'fatal') {
        count++;
        if (lvl !== 'warn') errors++;
        let key = line.slice(0, 160);
        try {
          const j = JSON.parse(line);
          const frame = /\n\s+at ([^\n]+)/.exec(j.err?.stack ?? '')?.[1]?.replace(/file:\/\/\S*\/dist\//, 'dist/') ?? '';
          key = `${lvl}: ${j.msg ?? ''}${j.err ? ` — ${j.err.type ?? ''}: ${j.err.message ?? ''}${frame ? ` at ${frame}` : ''}` : ''}${j.code ? ` [${j.code}]` : ''}`;
        } catch {
          key = line.replace(/^\S+ \S+ /, '').replace(/\d+#\d+: \*\d+ /, '').replace(/client: .*$/, '').slice(0, 200);
        }
        groups.set(key, (groups.get(key) || 0) + 1);
        if (sample.length < 8) sample.push(line.length > 400 ? line.slice(0, 400) + '…' : line);
      }
    }
  } catch {}
  return { count, errors, sample, groups: [...groups].sort((a, b) => b[1] - a[1]) };
}

// ---------------------------------------------------------------------------------------------------------
// listening sockets: which processes still hold the listening socket of a port (i.e. may still accept on it)

/** Inodes of the LISTEN sockets bound to 127.0.0.1:port (from /proc/net/tcp). */
export function listenInodes(port) {
  const out = new Set();
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1] === want && f[3] === '0A') out.add(f[9]);
    }
  } catch {}
  return out;
}

/** Does pid hold an fd on one of these socket inodes? */
export function holdsSocket(pid, inodes) {
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    let l;
    try {
      l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(l);
    if (m && inodes.has(m[1])) return true;
  }
  return false;
}

/** Wait until none of pids holds the listening socket of port any more; resolves the ms it took, or null. */
export async function waitStopAccepting(pids, port, ms) {
  const t0 = Date.now();
  const ok = await waitFor(() => {
    const inodes = listenInodes(port);
    return pids.every((p) => !isAlive(p) || !holdsSocket(p, inodes));
  }, ms, 20);
  return ok ? Date.now() - t0 : null;
}

// ---------------------------------------------------------------------------------------------------------
// TLS certificate for HTTP/2 runs: self-signed, generated into the temp dir (nothing committed)

/** openssl req -x509 into dir; returns {cert, key} (absolute paths). */
export async function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = await runCapture(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', `subjectAltName=DNS:localhost,IP:${HOST}`],
    { timeoutMs: 30_000 },
  );
  if (r.code !== 0 || !fs.existsSync(cert) || !fs.existsSync(key)) die(`openssl could not make a certificate: ${(r.stderr || r.stdout).trim()}`);
  return { cert, key };
}

// ---------------------------------------------------------------------------------------------------------
// h2load
//
// What h2load 1.52 counts (checked by hand against a small Node h2 server sending each kind of close):
//   - "failed": streams it sent that did not end with a 2xx/3xx response (reset, refused, 4xx/5xx, timeout);
//     "errored" is the subset that ended with a stream/connection error rather than a status.
//   - a graceful GOAWAY (any last-stream-id) stops that client for the rest of the run (no reconnect); it prints
//     "Process Request Failure:N" once per client so stopped, but the final counts stay 0 when no sent stream is
//     lost. Streams above the last-stream-id of a GOAWAY are counted "failed" and "errored" (REFUSED_STREAM).
//   - a connection that dies before its streams end: "started" > "done", NOT counted in "failed".
//   - a client that cannot connect (refused, TLS or preface failure): not counted anywhere; only visible as a
//     per-client req/s minimum of 0.00.
//   - "started" counts submitted streams, not streams on the wire: streams still queued in h2load when a GOAWAY
//     arrives are cancelled by nghttp2 and logged with status -1 and a start time of 0 (never sent).

export function parseH2load(text) {
  const r = {
    ok: false,
    seconds: null,
    rps: null,
    total: null,
    started: null,
    done: null,
    succeeded: null,
    failed: null,
    errored: null,
    timeout: null,
    status: { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    reqTime: null, // {min, max, mean, sd} in ms
    clientRps: null, // {min, max, mean}
    proto: null,
    cipher: null,
    tlsProtocol: null,
    goawayStops: 0,
  };
  let m;
  if ((m = /finished in ([\d.]+)(s|ms), ([\d.]+) req\/s/.exec(text))) {
    r.seconds = m[2] === 'ms' ? Number(m[1]) / 1000 : Number(m[1]);
    r.rps = Number(m[3]);
  }
  if ((m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text))) {
    [r.total, r.started, r.done, r.succeeded, r.failed, r.errored, r.timeout] = m.slice(1).map(Number);
  }
  if ((m = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text)))
    r.status = { '2xx': +m[1], '3xx': +m[2], '4xx': +m[3], '5xx': +m[4] };
  if ((m = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text)))
    r.reqTime = { min: wrkTimeToMs(m[1]), max: wrkTimeToMs(m[2]), mean: wrkTimeToMs(m[3]), sd: wrkTimeToMs(m[4]) };
  if ((m = /^req\/s\s+:\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/m.exec(text))) r.clientRps = { min: +m[1], max: +m[2], mean: +m[3] };
  if ((m = /Application protocol: (\S+)/.exec(text))) r.proto = m[1];
  if ((m = /^Cipher: (\S+)/m.exec(text))) r.cipher = m[1];
  if ((m = /^TLS Protocol: (\S+)/m.exec(text))) r.tlsProtocol = m[1];
  r.goawayStops = (text.match(/^Process Request Failure:/gm) || []).length;
  r.ok = r.started !== null && r.rps !== null;
  // sent streams whose connection died under them (not in "failed")
  r.lost = r.ok ? Math.max(0, r.started - r.done) : 0;
  // some client completed nothing in the whole run: it could not connect, or its handshake/preface failed
  r.idleClient = !!(r.clientRps && r.clientRps.min === 0);
  return r;
}

/**
 * An h2load --log-file (start µs since epoch, status or -1, µs to the end of the response): sorted latencies (ms)
 * of the 2xx/3xx streams, the other streams that were sent, each with its start time (ms since epoch), and the
 * count of streams cancelled before being sent (start time 0).
 */
export function readH2loadLog(file, { maxBad = 200 } = {}) {
  const lat = [];
  const bad = [];
  let badCount = 0;
  let unsent = 0;
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { lat, bad, badCount, unsent, lines: 0 };
  }
  let lines = 0;
  let i = 0;
  while (i < text.length) {
    let j = text.indexOf('\n', i);
    if (j < 0) j = text.length;
    const line = text.slice(i, j);
    i = j + 1;
    if (!line) continue;
    const [start, status, dur] = line.split('\t');
    lines++;
    const st = Number(status);
    if (st >= 200 && st < 400) lat.push(Number(dur) / 1000);
    else if (Number(start) === 0) unsent++;
    else {
      badCount++;
      if (bad.length < maxBad) bad.push({ t: Number(start) / 1000, status: st, ms: Number(dur) / 1000 });
    }
  }
  lat.sort((a, b) => a - b);
  return { lat, bad, badCount, unsent, lines };
}
