// scripts/conn-memory — where baton's memory goes: the baseline of master and workers (RSS split into pages shared
// with every other Node process and the process's own, and what each imported package adds), and the memory of one
// idle client connection (HTTP/1.1, h2c, TLS with HTTP/1.1, TLS with h2) in baton's connection code beside bare
// Node servers. Counts and sizes after GC, not timings: stable enough on a shared machine.
// Run `scripts/conn-memory --help` for flags.
import { fork, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  HOST,
  REPO_DIR,
  cleanup,
  die,
  freePorts,
  httpGet,
  log,
  makeCert,
  mkTempDir,
  readPidFile,
  spawnTracked,
  table,
  tail,
  waitFor,
  runMain,
} from './common.mjs';

const HELP = `usage: scripts/conn-memory [options]

1. Baseline: starts baton (2 workers, one listener, a return route) and prints each process's RSS from
   /proc/PID/smaps_rollup: shared (clean pages of the node binary and its data, mapped by every Node process and
   counted in each one's RSS) and private (the process's own). Then the heap and RSS a fresh Node process gains
   importing what a worker imports, package by package.
2. Per connection: a server process runs baton's connection code (dist/lib/worker/servers.js with a trivial
   request handler: listeners for HTTP/1.1, h2c and TLS) and then bare Node servers (http.createServer,
   http2.createServer, http2.createSecureServer with allowHTTP1); a client process opens N idle connections of
   each kind; the server takes a V8 heap snapshot (after GC) before and after: heap per connection (JS objects
   and the native memory Node reports: nghttp2 sessions, TLS wraps) and RSS per connection, then the object kinds
   where baton's connections cost more than bare Node's.

  --connections N   idle connections per kind (default 1000)
  --kinds LIST      of h1, h2c, tls-h1, tls-h2 (default all)
  --top N           object kinds listed per connection kind (default 8)
  --baton DIR       the baton tree whose dist/ is measured (default: ${REPO_DIR})
  --no-baseline     per connection only
  -h, --help        this text`;

const KINDS = ['h1', 'h2c', 'tls-h1', 'tls-h2'];

function parseArgs(argv) {
  const o = { connections: 1000, kinds: KINDS, top: 8, root: REPO_DIR, baseline: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    switch (a) {
      case '--connections': o.connections = Number(val()); break;
      case '--kinds': o.kinds = val().split(','); break;
      case '--top': o.top = Number(val()); break;
      case '--baton': o.root = path.resolve(val()); break;
      case '--no-baseline': o.baseline = false; break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0);
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (!Number.isInteger(o.connections) || o.connections < 10 || o.connections > 20_000) die('--connections must be an integer from 10 to 20000');
  for (const k of o.kinds) if (!KINDS.includes(k)) die(`unknown kind ${k} (${KINDS.join(', ')})`);
  return o;
}

const MiB = (b) => (b / 1048576).toFixed(1);
const KiB = (b) => (b / 1024).toFixed(1);

/** kB fields of /proc/PID/smaps_rollup, in bytes. */
function rollup(pid) {
  const out = {};
  try {
    for (const m of fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]] = Number(m[2]) * 1024;
  } catch {
    return null;
  }
  return out;
}

async function baseline(opt, dir) {
  const [port, admin] = await freePorts(2);
  fs.writeFileSync(path.join(dir, 'baton.yaml'), `pid_file: baton.pid
workers: 2
log: { level: warn, error: error.log, access: off }
admin: { listen: "${HOST}:${admin}" }
listeners:
  - listen: ${HOST}:${port}
routes:
  - path: /
    return: { status: 200, body: "ok\\n" }
`);
  const baton = spawnTracked(process.execPath, [path.join(opt.root, 'bin/baton'), '-c', path.join(dir, 'baton.yaml')], { cwd: dir, stdout: path.join(dir, 'baton.out'), stderr: path.join(dir, 'baton.out') });
  cleanup.addPidFile(path.join(dir, 'baton.pid'));
  const ok = await waitFor(async () => (await httpGet(port, '/'))?.status === 200, 20_000, 100);
  if (!ok) die(`baton did not serve: ${tail(path.join(dir, 'baton.out'))}${tail(path.join(dir, 'error.log'))}`);
  await new Promise((r) => setTimeout(r, 1000));
  const master = readPidFile(path.join(dir, 'baton.pid'));
  const workers = fs.readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const rows = [];
  const sum = { Rss: 0, Pss: 0, shared: 0, Private_Dirty: 0 };
  for (const [role, pid] of [['master', master], ...workers.map((w) => ['worker', w])]) {
    const r = rollup(pid);
    if (!r) continue;
    const shared = r.Shared_Clean + r.Shared_Dirty;
    const priv = r.Private_Clean + r.Private_Dirty;
    rows.push([`${role} ${pid}`, MiB(r.Rss), MiB(shared), MiB(priv), MiB(r.Pss)]);
    sum.Rss += r.Rss; sum.Pss += r.Pss; sum.shared += shared; sum.Private_Dirty += priv;
  }
  rows.push(['total', MiB(sum.Rss), MiB(sum.shared), MiB(sum.Private_Dirty), MiB(sum.Pss)]);
  baton.kill('SIGTERM');
  await waitFor(() => baton.exitCode !== null || baton.signalCode !== null, 10_000, 50);

  const mods = spawnSync(process.execPath, ['--expose-gc', path.join(REPO_DIR, 'scripts/lib/conn-memory-modules.mjs'), opt.root], { encoding: 'utf8', timeout: 60_000 });
  const modRows = mods.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).map((m) => [m.name, MiB(m.heap), MiB(m.rss)]);
  return (
    'baseline: baton with 2 workers, idle (MiB, /proc/PID/smaps_rollup)\n' +
    table(['process', 'RSS', 'shared', 'private', 'PSS'], rows) +
    '\n"shared" is mostly the node binary and its data, mapped once and counted in every Node process\'s RSS.\n\n' +
    'what a fresh Node process gains importing what a worker imports (MiB, after GC)\n' +
    table(['step', 'heap', 'RSS'], modRows, { leftLast: false }) + '\n'
  );
}

/** Heap snapshot totals by object kind: {total, by: {name: [count, bytes]}}; the file is removed. */
function readSnapshot(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.unlinkSync(file);
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const by = {};
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + ti]];
    const name = type === 'object' || type === 'native' ? snap.strings[snap.nodes[i + ni]] : type === 'closure' ? 'closure' : `(${type})`;
    const size = snap.nodes[i + si];
    total += size;
    const e = (by[name] ??= [0, 0]);
    e[0]++;
    e[1] += size;
  }
  return { total, by };
}

/**
 * N idle connections of `kind` to a fresh server process (baton or bare), so that no earlier kind's freed memory
 * hides this one's RSS; after one connection, so that what a kind creates once is in "before". With `dir`, heap
 * snapshots before and after (a separate run: writing a snapshot grows the process's RSS).
 */
async function oneRun(opt, mode, cert, kind, dir) {
  const server = fork(path.join(REPO_DIR, 'scripts/lib/conn-memory-server.mjs'), [mode, opt.root, cert.cert, cert.key], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.addChild(server);
  const ask = (m) => new Promise((r) => { server.once('message', r); server.send(m); });
  const { ports } = await new Promise((r) => server.once('message', r));
  const port = kind === 'h1' ? ports.h1 : kind === 'h2c' ? ports.h2c : ports.tls;
  const held = (c) => (kind.endsWith('h2') || kind === 'h2c' ? c.sessions : c.connections);
  const clients = async (n) => {
    const c = fork(path.join(REPO_DIR, 'scripts/lib/conn-memory-clients.mjs'), [String(port), kind, String(n)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanup.addChild(c);
    const opened = await new Promise((r) => c.once('message', r));
    if (opened !== 'open') die(`${kind}: the clients could not connect: ${opened}`);
    if (!(await waitFor(async () => held(await ask('counts')) === n, 120_000, 100))) log(`warning: ${mode} ${kind}: the server holds ${held(await ask('counts'))} of ${n}`);
    return c;
  };
  const warm = await clients(1);
  warm.send('close');
  await waitFor(async () => (await ask('counts')).connections === 0, 30_000, 50);
  const file = (when) => (dir ? path.join(dir, `${mode}-${kind}-${when}.heapsnapshot`) : null);
  const before = await ask({ measure: file('before') });
  const c = await clients(opt.connections);
  const after = await ask({ measure: file('after') });
  c.send('close');
  server.kill();
  if (!dir) return { rss: (after.rss - before.rss) / opt.connections };
  const [a, b] = [readSnapshot(file('before')), readSnapshot(file('after'))];
  return { heap: (b.total - a.total) / opt.connections, before: a, after: b };
}

async function perConnection(opt, mode, cert, dir) {
  const out = {};
  for (const kind of opt.kinds) {
    const { rss } = await oneRun(opt, mode, cert, kind, null);
    const heap = await oneRun(opt, mode, cert, kind, dir);
    out[kind] = { rss, ...heap };
    log(`${mode} ${kind}: ${KiB(heap.heap)} KiB heap, ${KiB(rss)} KiB RSS per connection`);
  }
  return out;
}

function diffBy(a, b, n) {
  const names = new Set([...Object.keys(a.after.by), ...Object.keys(b.after.by)]);
  const rows = [];
  for (const name of names) {
    const d = (x) => ((x.after.by[name]?.[1] ?? 0) - (x.before.by[name]?.[1] ?? 0)) / n;
    const c = (x) => ((x.after.by[name]?.[0] ?? 0) - (x.before.by[name]?.[0] ?? 0)) / n;
    rows.push([name, d(a) - d(b), c(a) - c(b)]);
  }
  return rows.sort((x, y) => y[1] - x[1]);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const dir = mkTempDir('baton-connmem-');
  cleanup.addHook(() => fs.rmSync(dir, { recursive: true, force: true }));
  if (!fs.existsSync(path.join(opt.root, 'dist/lib/worker/servers.js'))) die(`no build in ${opt.root} (npm run build)`);
  let report = `scripts/conn-memory — Node ${process.version}, ${opt.root}\n\n`;
  if (opt.baseline) {
    log('baseline');
    report += await baseline(opt, dir);
  }
  const cert = await makeCert(dir);
  const baton = await perConnection(opt, 'baton', cert, dir);
  const bare = await perConnection(opt, 'bare', cert, dir);
  const rows = opt.kinds.map((k) => [k, KiB(baton[k].heap), KiB(bare[k].heap), KiB(baton[k].rss), KiB(bare[k].rss)]);
  report += `\nper idle connection (KiB; ${opt.connections} connections per kind, after GC)\n`;
  report += table(['kind', 'heap baton', 'heap bare Node', 'RSS baton', 'RSS bare Node'], rows) + '\n';
  report += 'heap = V8 heap snapshot total: JS objects plus the native memory Node reports (nghttp2, TLS wraps); RSS also has OpenSSL\'s buffers.\n';
  for (const k of opt.kinds) {
    const d = diffBy(baton[k], bare[k], opt.connections).filter((r) => Math.abs(r[1]) >= 16).slice(0, opt.top);
    report += `\n${k}: where baton's connection costs more than bare Node's (bytes and objects per connection)\n`;
    report += table(['object kind', 'bytes', 'objects'], d.map(([n, b, c]) => [n, b.toFixed(0), c.toFixed(2)])) + '\n';
  }
  process.stdout.write('\n' + report);
  return 0;
}

runMain('conn-memory', main);
