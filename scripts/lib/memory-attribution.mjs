// scripts/memory-attribution — where a baton worker's memory goes, beside a bare Node process that loads only
// undici's Pool and an http server. `scripts/memory-attribution --help`.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { HOST, REPO_DIR, helloBatonYaml, childrenOf, cleanup, die, freePorts, httpGet, log, mkTempDir, spawnTracked, table, tail, waitFor } from './common.mjs';
import { PROBE, breakdownRows, probeWorker, readProbe } from './memory-breakdown.mjs';
const HELP = `usage: scripts/memory-attribution [options]

Starts baton (1 worker, access log on) in a temp dir in front of an upstream in this process, sends --requests
keep-alive requests, then has the worker describe its memory (memory-probe.mjs, loaded with --import): RSS and
the kernel's split of it (smaps_rollup), process.memoryUsage(), V8's heap spaces and code, before and after a full
GC. The same for a bare Node process that loads only undici's Pool and listens. Prints one table, in MiB.

  --node PATH          node binary (default: the one running this script)
  --requests N         warm-up requests before the sample (default 5000)
  --idle S             seconds the worker stays idle after the warm-up before it describes itself (default 0): V8
                       keeps the young generation the load grew until its own memory reducer runs, if it does
  --v8 "FLAGS"         extra node/V8 flags for baton's processes (NODE_OPTIONS), e.g. "--max-semi-space-size=1"
  --baton PATH         baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --keep               keep the temp dir
`;

function parseArgs(argv) {
  const o = { node: process.execPath, requests: 5000, idle: 0, v8: '', baton: path.join(REPO_DIR, 'bin/baton'), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    switch (a) {
      case '-h': case '--help': process.stdout.write(HELP); process.exit(0);
      case '--node': o.node = path.resolve(next()); break;
      case '--requests': o.requests = Number(next()); if (!Number.isInteger(o.requests) || o.requests < 0 || o.requests > 10_000_000) die('--requests needs an integer'); break;
      case '--idle': o.idle = Number(next()); if (!(o.idle >= 0 && o.idle <= 600)) die('--idle needs seconds (0-600)'); break;
      case '--v8': o.v8 = next(); break;
      case '--baton': o.baton = path.resolve(next()); break;
      case '--keep': o.keep = true; break;
      default: die(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

async function warmUp(port, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let next = 0;
  const one = () => new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: `/item/${next}`, agent }, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', resolve);
  });
  await Promise.all(Array.from({ length: 8 }, async () => { while (next++ < n) await one(); }));
  agent.destroy();
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const dir = mkTempDir('baton-memory-attribution-');
  const probes = path.join(dir, 'probes');
  fs.mkdirSync(probes);
  const [port, adminPort] = await freePorts(2);
  const upstream = http.createServer((req, res) => res.end('hello from the upstream\n'));
  await new Promise((r) => upstream.listen(0, HOST, r));
  fs.writeFileSync(path.join(dir, 'baton.yaml'), helloBatonYaml({ workers: 1, port, admin: adminPort, upPort: upstream.address().port, h2c: false, compress: null }));
  cleanup.addPidFile(path.join(dir, 'baton.pid'));
  const nodeOptions = [`--import=${PROBE}`, opt.v8].filter(Boolean).join(' ');
  const env = { ...process.env, MEM_PROBE_DIR: probes, NODE_OPTIONS: nodeOptions };
  const master = spawnTracked(opt.node, [opt.baton, '-c', path.join(dir, 'baton.yaml')], { cwd: dir, env, stdout: path.join(dir, 'baton.out'), stderr: path.join(dir, 'baton.out') });
  if (!(await waitFor(async () => (await httpGet(port, '/', { timeout: 1000 }))?.status === 200, 30_000, 100))) die(`baton did not start:\n${tail(path.join(dir, 'baton.out'))}`, 1);
  const version = execFileSync(opt.node, ['--version'], { encoding: 'utf8' }).trim();
  log(`baton ${master.pid} under node ${version}${opt.v8 ? ` with ${opt.v8}` : ''}; ${opt.requests} warm-up requests; load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await warmUp(port, opt.requests);
  await new Promise((r) => setTimeout(r, opt.idle * 1000));
  const [worker] = childrenOf(master.pid);
  if (!worker) die('no worker process', 1);
  const w = await probeWorker(probes, worker);
  if (!w) die('the worker wrote no probe (is the probe loaded? see baton.out)', 1);

  // The bare process: undici's Pool from the same node_modules, an http server listening, nothing else.
  const bareCode = `const { createRequire } = require('node:module'); const r = createRequire(${JSON.stringify(path.join(REPO_DIR, 'package.json'))});
    const Pool = r('undici/lib/dispatcher/pool.js'); new Pool('http://${HOST}:${upstream.address().port}');
    require('node:http').createServer().listen(0, '${HOST}'); setTimeout(() => process.exit(0), 60000);`;
  const bare = spawn(opt.node, [`--import=${PROBE}`, ...opt.v8.split(' ').filter(Boolean), '-e', bareCode], { env: { ...process.env, MEM_PROBE_DIR: probes, MEM_PROBE_NOW: '1', MEM_PROBE_DELAY_MS: '1000' }, stdio: 'ignore' });
  cleanup.addChild(bare);
  const b = await readProbe(probes, bare.pid);
  bare.kill();

  const rows = breakdownRows([() => w.before, () => w.after, () => b?.after]);
  process.stdout.write(`\nscripts/memory-attribution — node ${version}${opt.v8 ? `, ${opt.v8}` : ''}, after ${opt.requests} requests and ${opt.idle} s idle; load avg ${os.loadavg()[0].toFixed(2)}\n` +
    `worker: ${w.argv[1]}, ${w.builtins} Node built-in modules; bare: ${b ? `${b.builtins} built-in modules` : 'no probe'}\n\n` +
    table(['MiB', 'worker', 'worker after GC', 'bare undici Pool after GC'], rows) + '\n');
  upstream.close();
  await cleanup.run();
  if (!opt.keep) fs.rmSync(dir, { recursive: true, force: true });
  return 0;
}

main().then((code) => process.exit(code), async (err) => {
  process.stderr.write(`memory-attribution: ${err.exitCode ? err.message : err.stack}\n`);
  await cleanup.run();
  process.exit(err.exitCode || 1);
});
