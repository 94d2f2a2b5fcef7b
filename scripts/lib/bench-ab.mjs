// scripts/lib/bench-ab.mjs A_DIR B_DIR [rounds] [seconds] [conns] — two builds of baton (each dir holds bin/,
// dist/, package.json, node_modules) behind the same nginx upstream, wrk keep-alive against each in turn
// (A B A B ...), printing req/s, wrk's p99 and CPU seconds (master + workers, /proc) per 1000 requests per round
// and the medians: to keep or drop one change on a shared machine. BENCH_NODE=path runs baton under another node;
// BENCH_H2=1 uses h2load -c16 -m10 over h2c instead of wrk; BENCH_CLOSE=1 sends wrk's requests with
// "Connection: close" (one connection per request: what a change costs or saves per connection);
// BENCH_A_OPTIONS / BENCH_B_OPTIONS add to NODE_OPTIONS of that side's processes (the same build twice with two
// settings, e.g. a preload that sets a V8 flag); BENCH_GZIP=1 sends wrk's requests for /text (8 KiB of HTML) with
// "Accept-Encoding: gzip" to a baton that compresses (gzip, as scripts/bench's gzip row), BENCH_BR=1 the same with
// brotli; BENCH_UPSTREAM_H2=1 speaks HTTP/2 to the upstream (nginx "listen http2", baton `protocol: http2`).
// The listener has `h2c: true` (HTTP/1.1 and h2c on one port). Each round also prints the workers' RSS as the
// load ends.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST, childrenOf, cleanup, helloBatonYaml, startHelloNginx, freePorts, httpGet, log, mkTempDir, parseH2load, parseWrk, runCapture, spawnTracked, waitFor, withNodeOptions } from './common.mjs';
import { median, rssMiB, treeCpu } from './bench-cpu.mjs';

const [a, b, rounds = '3', secs = '8', conns = '64'] = process.argv.slice(2);
const node = process.env.BENCH_NODE || process.execPath;
const h2 = process.env.BENCH_H2 === '1';
const close = !h2 && process.env.BENCH_CLOSE === '1';
/** The coding the compressed runs ask for and baton is configured with, or null. */
const coding = h2 ? null : process.env.BENCH_GZIP === '1' ? 'gzip' : process.env.BENCH_BR === '1' ? 'br' : null;
const urlPath = coding ? '/text' : '/';
const upstreamH2 = process.env.BENCH_UPSTREAM_H2 === '1';
cleanup.install();
const dir = mkTempDir('baton-ab-');
const [upPort, pa, pb, aa, ab] = await freePorts(5);
startHelloNginx(dir, upPort, { http2: upstreamH2 });
const start = (name, root, port, admin) => {
  const compression = coding ? { compress: true, top: `compression: { algorithms: [${coding}], min_size: 1k }` } : {};
  fs.writeFileSync(`${dir}/${name}.yaml`, helloBatonYaml({ name, workers: 2, port, admin, upPort, http2: upstreamH2, ...compression }));
  const extra = process.env[`BENCH_${name}_OPTIONS`];
  const env = extra ? withNodeOptions(extra) : process.env;
  return spawnTracked(node, [path.join(root, 'bin/baton'), '-c', `${dir}/${name}.yaml`], { cwd: dir, env, stdout: `${dir}/${name}.out`, stderr: `${dir}/${name}.out` });
};
const targets = [
  { name: 'A', port: pa, cp: start('A', path.resolve(a), pa, aa), runs: [] },
  { name: 'B', port: pb, cp: start('B', path.resolve(b), pb, ab), runs: [] },
];
for (const t of targets) {
  if (!(await waitFor(async () => (await httpGet(t.port, '/'))?.status === 200, 30_000, 200))) throw new Error(`${t.name} did not start (${dir})`);
  if (coding && (await httpGet(t.port, urlPath, { headers: { 'accept-encoding': coding } }))?.headers['content-encoding'] !== coding) throw new Error(`${t.name} did not compress ${urlPath} with ${coding} (${dir})`);
}
const run = async (t, s) => {
  const cpu0 = treeCpu(t.cp.pid);
  const r = h2
    ? await runCapture('h2load', ['-c16', '-m10', '-t1', '-D', String(s), `http://${HOST}:${t.port}/`], { timeoutMs: s * 1000 + 30_000 })
    : await runCapture('wrk', ['-t2', `-c${conns}`, `-d${s}s`, '--latency', ...(close ? ['-H', 'Connection: close'] : []),
      ...(coding ? ['-H', `Accept-Encoding: ${coding}`] : []), `http://${HOST}:${t.port}${urlPath}`], { timeoutMs: s * 1000 + 30_000 });
  const cpu = treeCpu(t.cp.pid) - cpu0;
  const rss = childrenOf(t.cp.pid).map((pid) => rssMiB(pid)?.toFixed(0) ?? '-').join('/');
  const p = h2 ? parseH2load(r.stdout) : parseWrk(r.stdout);
  const n = h2 ? p.done : p.requests;
  return { rps: p.rps, cpu1k: n ? cpu / (n / 1000) : NaN, p99: p.p99 ?? null, rss };
};
for (const t of targets) await run(t, 2);
log(`load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${h2 ? 'h2load -c16 -m10 h2c' : `wrk -t2 -c${conns}${close ? ' Connection: close' : ''}${coding ? ` GET /text ${coding}` : ''}`}${upstreamH2 ? ', HTTP/2 upstream' : ''} ${secs}s x ${rounds} rounds, node ${node}`);
for (let r = 1; r <= Number(rounds); r++) {
  for (const t of r % 2 ? targets : [...targets].reverse()) {
    const x = await run(t, Number(secs));
    t.runs.push(x);
    log(`round ${r} ${t.name}: ${x.rps} req/s, ${x.cpu1k.toFixed(4)} CPU s/1000${x.p99 === null ? '' : `, p99 ${x.p99.toFixed(2)} ms`}, workers' RSS ${x.rss} MiB`);
  }
}
for (const t of targets) {
  const p99 = h2 ? '' : `, median p99 ${median(t.runs.map((x) => x.p99)).toFixed(2)} ms`;
  console.log(`${t.name} ${t.name === 'A' ? a : b}: median ${median(t.runs.map((x) => x.rps)).toFixed(0)} req/s, median ${median(t.runs.map((x) => x.cpu1k)).toFixed(4)} CPU s/1000 (${t.runs.map((x) => x.cpu1k.toFixed(4)).join(' ')})${p99}`);
}
console.log(`B/A CPU per request: ${(median(targets[1].runs.map((x) => x.cpu1k)) / median(targets[0].runs.map((x) => x.cpu1k))).toFixed(3)}; load avg now ${os.loadavg()[0].toFixed(2)}`);
await cleanup.run();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
