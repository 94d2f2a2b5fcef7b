// scripts/cpu-profile [--mode keepalive|close|h2c|tls] [--upstream http1|http2] [--seconds N] [--top N] [--dist DIR] [--keep] [--syscalls [--requests N]] [--bare]
// One baton worker behind a loopback nginx upstream (return 200 "hello\n"), profiling itself (cpu-prof-preload.cjs); wrk (keep-alive
// or Connection: close) or h2load (h2c, or HTTP/2 over TLS with --mode tls: -c16 -m10) for N seconds; the worker stops gracefully so that V8 writes its
// profile. Prints the worker's self time by owner (baton; bundle: baton with pino and http-proxy, when the worker
// runs from dist/bundle; undici, node internals, GC, idle) and the top functions by self time: where CPU per
// request goes, and what baton does beyond a bare proxy.
// --syscalls: no profile; instead `strace -c -f` on the worker while h2load sends exactly N requests (--h1 for
// keepalive and close, h2c otherwise): system calls per request by name, a deterministic count.
// --upstream http2: the upstream leg over HTTP/2 (nginx "listen http2", baton `protocol: http2`).
// --bare: the same, of the bare undici proxy (scripts/lib/bare-proxy.mjs, one worker) instead of baton: what the
// floor spends, function by function, beside what baton spends (HTTP/1.1 modes only).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST, REPO_DIR, helloBatonYaml, makeCert, startHelloNginx, childrenOf, cleanup, sleep, freePorts, httpGet, log, mkTempDir, runCapture, signal, spawnTracked, waitExit, waitFor } from './common.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : args[i + 1];
};
if (args.includes('--help') || args.includes('-h')) {
  console.log(fs.readFileSync(new URL(import.meta.url)).toString().split('\n')[0].replace(/^\/\/ /, 'usage: '));
  process.exit(0);
}
const mode = opt('mode', 'keepalive');
const secs = Number(opt('seconds', '10'));
const top = Number(opt('top', '30'));
const root = path.resolve(opt('dist', REPO_DIR));
const node = process.env.BENCH_NODE || process.execPath;
cleanup.install();
const dir = mkTempDir('baton-prof-');
const profDir = `${dir}/prof`;
fs.mkdirSync(profDir);
const [upPort, port, admin] = await freePorts(3);
const http2 = opt('upstream', 'http1') === 'http2';
startHelloNginx(dir, upPort, { http2 });
const tls = mode === 'tls' ? await makeCert(dir) : null;
fs.writeFileSync(`${dir}/baton.yaml`, helloBatonYaml({ workers: 1, port, admin, upPort, http2, tls }));
const preload = path.join(path.dirname(new URL(import.meta.url).pathname), 'cpu-prof-preload.cjs');
const syscalls = args.includes('--syscalls');
const env = syscalls ? process.env : { ...process.env, NODE_OPTIONS: `--require ${preload}`, BATON_CPU_PROF_DIR: profDir };
const bare = args.includes('--bare');
const h2 = mode === 'h2c' || mode === 'tls';
if (bare && (h2 || http2)) throw new Error('--bare: the bare proxy speaks HTTP/1.1 only (--mode keepalive or close)');
const baton = bare
  ? spawnTracked(node, [path.join(path.dirname(preload), 'bare-proxy.mjs'), String(port), `http://${HOST}:${upPort}`, '1'], { cwd: dir, env, stdout: `${dir}/baton.out`, stderr: `${dir}/baton.out` })
  : spawnTracked(node, [path.join(root, 'bin/baton'), '-c', `${dir}/baton.yaml`], { cwd: dir, env, stdout: `${dir}/baton.out`, stderr: `${dir}/baton.out` });
// baton's workers leave on QUIT after their requests; the bare proxy's primary passes TERM on to its worker.
const stopSignal = bare ? 'SIGTERM' : 'SIGQUIT';
const url = `${tls ? 'https' : 'http'}://${HOST}:${port}/`;
// The TLS listener answers only TLS: h2load's one request is the probe.
const up = tls
  ? async () => /1 succeeded/.test((await runCapture('h2load', ['-n1', '-c1', url], { timeoutMs: 10_000 })).stdout)
  : async () => (await httpGet(port, '/'))?.status === 200;
if (!(await waitFor(up, 30_000, 200))) throw new Error(`${bare ? 'the bare proxy' : 'baton'} did not start (${dir})`);
const load = (s) => h2
  ? runCapture('h2load', ['-c16', '-m10', '-t1', '-D', String(s), ...(tls ? ['--tls13-ciphers', 'TLS_AES_128_GCM_SHA256'] : []), url], { timeoutMs: s * 1000 + 30_000 })
  : runCapture('wrk', ['-t2', '-c64', `-d${s}s`, ...(mode === 'close' ? ['-H', 'Connection: close'] : []), url], { timeoutMs: s * 1000 + 30_000 });
await load(2);
if (syscalls) {
  const n = Number(opt('requests', '20000'));
  const [pid] = childrenOf(baton.pid);
  const out = `${dir}/strace.txt`;
  const st = spawnTracked('strace', ['-c', '-f', '-o', out, '-p', String(pid)], { cwd: dir });
  await sleep(1000); // attached
  const h = await runCapture('h2load', [...(h2 ? ['-m10'] : ['--h1']), '-c16', '-t1', '-n', String(n),
    ...(mode === 'close' ? ['-H', 'Connection: close'] : []), url], { timeoutMs: 300_000 });
  const done = Number(/requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(h.stdout)?.[2] ?? 0);
  signal(st.pid, 'SIGINT');
  await waitExit(st.pid, 30_000);
  log(`load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${mode}: ${done} of ${n} requests succeeded`);
  const rows = fs.readFileSync(out, 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c.length >= 5 && /^\d+$/.test(c[3]));
  let total = 0;
  for (const c of rows) if (c[c.length - 1] !== 'total') total += Number(c[3]);
  console.log(`${mode}: ${(total / done).toFixed(2)} system calls per request (${done} requests)`);
  for (const c of rows.filter((c) => c[c.length - 1] !== 'total').sort((a, b) => Number(b[3]) - Number(a[3]))) {
    console.log(`  ${c[c.length - 1].padEnd(16)} ${(Number(c[3]) / done).toFixed(3)}`);
  }
  signal(baton.pid, stopSignal);
  await waitExit(baton.pid, 60_000);
  await cleanup.run();
  if (!args.includes('--keep')) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
log(`load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${bare ? 'bare proxy, ' : ''}${mode} ${secs}s, node ${node}`);
const r = await load(secs);
const done = /(\d+) requests in|requests: \d+ total, \d+ started, (\d+) done/.exec(r.stdout);
const requests = Number(done?.[1] ?? done?.[2] ?? 0);
signal(baton.pid, stopSignal);
await waitExit(baton.pid, 60_000);
const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => `${profDir}/${f}`);
// The worker's profile: every one but the master's.
const worker = files.find((f) => path.basename(f) !== `${baton.pid}.cpuprofile`);
const prof = worker === undefined ? undefined : JSON.parse(fs.readFileSync(worker, 'utf8'));
if (!prof) throw new Error(`no profile written (${dir})`);

const owner = (cf) => {
  const u = cf.url;
  if (cf.functionName === '(garbage collector)') return 'gc';
  if (cf.functionName === '(idle)') return 'idle';
  if (cf.functionName === '(program)') return 'program';
  if (u.includes('/node_modules/undici/')) return 'undici';
  if (u.includes('/node_modules/')) return 'deps';
  if (u.includes('/dist/lib/')) return 'baton';
  // Workers start from the bundle (scripts/lib/bundle.mjs) when it is up to date: our code plus pino and http-proxy.
  if (u.includes('/dist/bundle/')) return 'bundle';
  if (u.endsWith('/bare-proxy.mjs')) return 'bare';
  if (u.startsWith('node:') || u === '') return 'node';
  return 'other';
};
const dt = new Map();
for (let i = 0; i < prof.samples.length; i++) dt.set(prof.samples[i], (dt.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
const byOwner = new Map();
const byFn = new Map();
let total = 0;
for (const n of prof.nodes) {
  const t = dt.get(n.id) ?? 0;
  if (t === 0) continue;
  const cf = n.callFrame;
  const o = owner(cf);
  byOwner.set(o, (byOwner.get(o) ?? 0) + t);
  if (o !== 'idle') total += t;
  const where = cf.url ? `${cf.url.replace(/^.*\/(dist\/lib|node_modules)\//, '$1/').replace(/^file:\/\//, '')}:${cf.lineNumber + 1}` : '';
  const key = `${cf.functionName || '(anonymous)'} ${where}`;
  const e = byFn.get(key) ?? { key, owner: o, t: 0 };
  e.t += t;
  byFn.set(key, e);
}
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
console.log(`${mode}: ${requests} requests; worker busy ${(total / 1e6).toFixed(2)} s (${((total / 1e3) / requests * 1000).toFixed(1)} µs of samples per request), idle ${((byOwner.get('idle') ?? 0) / 1e6).toFixed(2)} s`);
console.log('self time by owner (idle excluded):');
for (const [o, t] of [...byOwner].filter(([o]) => o !== 'idle').sort((a, b) => b[1] - a[1])) console.log(`  ${o.padEnd(8)} ${pct(t)}`);
console.log(`top ${top} functions by self time:`);
for (const e of [...byFn.values()].filter((e) => e.owner !== 'idle').sort((a, b) => b.t - a.t).slice(0, top)) {
  console.log(`  ${pct(e.t)}  ${e.owner.padEnd(7)} ${e.key}`);
}
if (args.includes('--keep')) console.log(`profiles kept in ${profDir}`);
await cleanup.run();
if (!args.includes('--keep')) fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
