// scripts/memory-soak — push a million requests through baton, a tenth of them from clients that abort
// mid-response, a tenth to failing upstreams, some large uploads, and print the workers' RSS (from /proc) at
// the start, every tenth of the way and at the end. The RSS must plateau: the verdict compares the middle
// with the end. Run `scripts/memory-soak --help` for flags.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import {
  HOST,
  REPO_DIR,
  cleanup,
  childrenOf,
  cmdline,
  die,
  freePorts,
  httpGet,
  isAlive,
  log,
  mkTempDir,
  readPidFile,
  spawnTracked,
  table,
  tail,
  waitFor,
  waitPort,
  runMain,
  withNodeOptions,
} from './common.mjs';
import { PROBE, breakdownRows, probeWorker } from './memory-breakdown.mjs';

const HELP = `usage: scripts/memory-soak [options]

Starts a misbehaving upstream (scripts/lib/soak-upstream.mjs) and baton (2 workers by default) in a temp dir,
then sends --requests requests through baton from --concurrency concurrent clients (undici, keep-alive):

  80%  GET /ok             100 B, 4 KiB or 32 KiB answers           expect 200
  10%  GET /stream         a 1 MiB answer the client aborts after the first chunk
  10%  failing upstreams   3% refused (502), 3% reset before headers (502 after the retry),
                           3% reset mid-body (a broken response), 1% no answer (504 at response_timeout,
                           200ms)
  every 500th request      POST /upload of 1 MiB instead (half Content-Length, half chunked)  expect 200

and prints the RSS of every worker (VmRSS from /proc/PID/status) after a warm-up, every tenth of the run, at the
end and 2, 20 and 40 s after it (what V8 and the worker's quiet collection give back once the load stops), the request counts per kind, and a
verdict: PLATEAU when every worker's RSS at the end is within max(16 MiB, 10%) of its RSS at the middle.

  --requests N      total requests (default 1000000)
  --concurrency N   concurrent clients (default 96)
  --workers N       baton workers (default 2)
  --warmup N        requests before the first RSS sample (default 20000)
  --baton PATH      baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --probe           after the run, each worker describes its memory (scripts/lib/memory-probe.mjs, loaded with
                    --import): the kernel's split of RSS, V8's heap spaces, malloc'd and external memory,
                    before and after a full GC; one table, as scripts/memory-attribution prints
  --keep            keep the temp dir (config, error log)

SOAK_ONLY=KIND (ok, abort, refused, reset, midbody, timeout, upload) sends only that kind: to measure one alone.
`;

function parseArgs(argv) {
  const opt = { requests: 1_000_000, concurrency: 96, workers: 2, warmup: 20_000, baton: path.join(REPO_DIR, 'bin/baton'), keep: false, probe: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    const int = () => {
      const n = Number(next());
      if (!Number.isInteger(n) || n < 1) die(`${a} needs a positive integer`);
      return n;
    };
    switch (a) {
      case '-h': case '--help': process.stdout.write(HELP); process.exit(0);
      case '--requests': opt.requests = int(); break;
      case '--concurrency': opt.concurrency = int(); break;
      case '--workers': opt.workers = int(); break;
      case '--warmup': opt.warmup = int(); break;
      case '--baton': opt.baton = path.resolve(next()); break;
      case '--keep': opt.keep = true; break;
      case '--probe': opt.probe = true; break;
      default: die(`unknown argument ${a} (see --help)`);
    }
  }
  return opt;
}

/** VmRSS in KiB, or null when the process is gone. */
function rssKiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const MiB = (kib) => (kib === null ? '-' : (kib / 1024).toFixed(1));

/** The kind of request number i (deterministic mix). */
function kindOf(i) {
  if (process.env.SOAK_ONLY) return process.env.SOAK_ONLY;
  if (i % 500 === 499) return 'upload';
  const r = i % 100;
  if (r < 80) return 'ok';
  if (r < 90) return 'abort';
  // A timed-out request holds its client for response_timeout (200 ms): 1 in 100.
  return r < 93 ? 'refused' : r < 96 ? 'reset' : r < 99 ? 'midbody' : 'timeout';
}

const SIZES = [100, 4096, 32 * 1024];
const UPLOAD = Buffer.alloc(1024 * 1024, 117);

async function readAll(body) {
  let n = 0;
  for await (const c of body) n += c.length;
  return n;
}

/** One request of `kind`; returns an outcome label (what happened), never throws. */
async function one(pool, kind, i) {
  try {
    switch (kind) {
      case 'ok': {
        const size = SIZES[i % SIZES.length];
        const res = await pool.request({ path: `/ok?size=${size}`, method: 'GET' });
        const n = await readAll(res.body);
        return res.statusCode === 200 && n === size ? 'ok' : `status ${res.statusCode} (${n} bytes)`;
      }
      case 'abort': {
        const ac = new AbortController();
        const res = await pool.request({ path: '/stream', method: 'GET', signal: ac.signal });
        try {
          for await (const _ of res.body) {
            ac.abort();
            break;
          }
        } catch { /* the abort itself */ }
        return 'aborted';
      }
      case 'upload': {
        const chunked = i % 1000 === 499;
        const body = chunked ? Readable.from([UPLOAD.subarray(0, 512 * 1024), UPLOAD.subarray(512 * 1024)]) : UPLOAD;
        const res = await pool.request({ path: '/upload', method: 'POST', body, headers: chunked ? {} : { 'content-length': String(UPLOAD.length) } });
        const text = await res.body.text();
        return res.statusCode === 200 && text === String(UPLOAD.length) ? 'ok' : `status ${res.statusCode} ${text.slice(0, 40)}`;
      }
      default: {
        const res = await pool.request({ path: `/fail/${kind}`, method: 'GET' });
        await readAll(res.body);
        return `status ${res.statusCode}`;
      }
    }
  } catch (err) {
    if (err.name === 'AbortError' || err.code === 'UND_ERR_ABORTED') return 'aborted';
    return `error ${err.code ?? err.name}`;
  }
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const dir = mkTempDir('baton-soak-');
  if (!opt.keep) cleanup.addHook(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [upPort, proxyPort, adminPort, refusedPort] = await freePorts(4);

  const upstream = spawnTracked(process.execPath, [path.join(REPO_DIR, 'scripts/lib/soak-upstream.mjs'), String(upPort)], { cwd: dir, stdout: path.join(dir, 'upstream.out'), stderr: path.join(dir, 'upstream.out') });
  if (!(await waitPort(upPort, 10_000))) die(`the soak upstream did not start: ${tail(path.join(dir, 'upstream.out'))}`);

  fs.writeFileSync(path.join(dir, 'baton.yaml'), `pid_file: baton.pid
workers: ${opt.workers}
log:
  level: error
  error: error.log
  access: /dev/null
admin:
  listen: ${HOST}:${adminPort}
listeners:
  - listen: ${HOST}:${proxyPort}
upstreams:
  app:
    targets: [{ url: "http://${HOST}:${upPort}" }]
    response_timeout: 200ms
    keepalive_timeout: 20s
  refused:
    targets: [{ url: "http://${HOST}:${refusedPort}" }]
routes:
  - path: /fail/refused
    upstream: refused
  - path: /
    upstream: app
`);
  const probes = path.join(dir, 'probes');
  if (opt.probe) fs.mkdirSync(probes);
  const env = opt.probe ? withNodeOptions(`--import=${PROBE}`, { ...process.env, MEM_PROBE_DIR: probes }) : process.env;
  const baton = spawnTracked(process.execPath, [opt.baton, '-c', path.join(dir, 'baton.yaml')], { cwd: dir, env, stdout: path.join(dir, 'baton.out'), stderr: path.join(dir, 'baton.out') });
  cleanup.addPidFile(path.join(dir, 'baton.pid'));
  const ready = await waitFor(async () => {
    if (baton.exitCode !== null) die(`baton exited: ${tail(path.join(dir, 'baton.out'))}\n${tail(path.join(dir, 'error.log'))}`);
    const r = await httpGet(proxyPort, '/ok?size=2');
    return r && r.status === 200;
  }, 20_000, 100);
  if (!ready) die(`baton did not serve within 20s: ${tail(path.join(dir, 'error.log'))}`);
  const master = await waitFor(() => readPidFile(path.join(dir, 'baton.pid')), 10_000, 50);
  if (!master) die('baton wrote no pid file');
  const workers = () => childrenOf(master).filter((p) => cmdline(p).includes('worker'));
  const initialWorkers = workers().sort((a, b) => a - b);
  log(`baton master ${master}, workers ${initialWorkers.join(' ')}; upstream ${upstream.pid}; ${opt.requests} requests, concurrency ${opt.concurrency}`);

  const pool = new Pool(`http://${HOST}:${proxyPort}`, { connections: opt.concurrency, pipelining: 1, keepAliveTimeout: 10_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const counts = new Map(); // kind → outcome → n
  const count = (kind, outcome) => {
    let m = counts.get(kind);
    if (!m) counts.set(kind, (m = new Map()));
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
  };

  const samples = [];
  const sample = (label, done) => {
    const ws = workers();
    samples.push({ label, done, t: Date.now(), master: rssKiB(master), workers: Object.fromEntries(ws.map((p) => [p, rssKiB(p)])) });
  };

  // Warm-up (not counted), then the run with a sample at every tenth.
  const total = opt.requests;
  let next = 0;
  let done = 0;
  let limit = opt.warmup;
  const runUntil = async (n, counted) => {
    limit = n;
    const loop = async () => {
      while (next < limit) {
        const i = next++;
        const kind = kindOf(i);
        const outcome = await one(pool, kind, i);
        if (counted) count(kind, outcome);
        done++;
      }
    };
    await Promise.all(Array.from({ length: opt.concurrency }, loop));
  };
  log(`warm-up: ${opt.warmup} requests`);
  await runUntil(opt.warmup, false);
  next = 0;
  done = 0;
  await new Promise((r) => setTimeout(r, 1000));
  sample('start', 0);
  const started = Date.now();
  const tenth = Math.ceil(total / 10);
  for (let k = 1; k <= 10; k++) {
    await runUntil(Math.min(total, k * tenth), true);
    const secs = (Date.now() - started) / 1000;
    sample(k === 5 ? 'middle' : k === 10 ? 'end' : `${k * 10}%`, done);
    const w = samples.at(-1).workers;
    log(`${done} requests, ${(done / secs).toFixed(0)} req/s, worker RSS MiB: ${Object.values(w).map(MiB).join(' ')}`);
    if (baton.exitCode !== null) die('baton exited during the run');
  }
  const elapsed = (Date.now() - started) / 1000;
  await pool.close();
  await new Promise((r) => setTimeout(r, 2000));
  sample('end + 2s idle', done);
  // Whether the memory the run grew goes back once the load stops (V8's memory reducer starts on its own timers;
  // a worker's quiet collection after 30 s without work).
  await new Promise((r) => setTimeout(r, 18_000));
  sample('end + 20s idle', done);
  await new Promise((r) => setTimeout(r, 20_000));
  sample('end + 40s idle', done);

  // Report.
  const pids = [...new Set(samples.flatMap((s) => Object.keys(s.workers)))];
  process.stdout.write(`\nbaton memory soak: ${done} requests in ${elapsed.toFixed(0)} s (${(done / elapsed).toFixed(0)} req/s), ${opt.workers} workers, concurrency ${opt.concurrency}\n\n`);
  process.stdout.write('RSS (MiB) from /proc/PID/status VmRSS\n');
  process.stdout.write(table(['sample', 'requests', ...pids.map((p) => `worker ${p}`), `master ${master}`], samples.map((s) => [s.label, s.done, ...pids.map((p) => MiB(s.workers[p] ?? null)), MiB(s.master)])) + '\n\n');

  const rows = [];
  for (const [kind, m] of [...counts].sort()) for (const [outcome, n] of [...m].sort((a, b) => b[1] - a[1])) rows.push([kind, outcome, n]);
  process.stdout.write('requests per kind and outcome\n' + table(['kind', 'outcome', 'count'], rows) + '\n\n');

  const mid = samples.find((s) => s.label === 'middle');
  const end = samples.find((s) => s.label === 'end');
  const verdicts = [];
  let plateau = true;
  for (const p of pids) {
    const a = mid?.workers[p];
    const b = end?.workers[p];
    if (a == null || b == null) {
      verdicts.push(`worker ${p}: not alive for the whole run`);
      plateau = false;
      continue;
    }
    const allowed = Math.max(16 * 1024, a * 0.1);
    const ok = b - a <= allowed;
    if (!ok) plateau = false;
    verdicts.push(`worker ${p}: middle ${MiB(a)} MiB → end ${MiB(b)} MiB (${b >= a ? '+' : ''}${MiB(b - a)} MiB) ${ok ? 'ok' : 'GROWING'}`);
  }
  const restarted = initialWorkers.some((p) => !isAlive(p));
  const unexpected = [...(counts.get('ok') ?? new Map())].filter(([o]) => o !== 'ok').reduce((n, [, c]) => n + c, 0) +
    [...(counts.get('upload') ?? new Map())].filter(([o]) => o !== 'ok').reduce((n, [, c]) => n + c, 0);
  process.stdout.write(verdicts.join('\n') + '\n');
  process.stdout.write(`workers restarted during the run: ${restarted ? 'YES' : 'no'}; well-formed requests that failed: ${unexpected}\n`);
  process.stdout.write(`verdict: ${plateau && !restarted ? 'PLATEAU' : 'NOT A PLATEAU'}\n`);
  if (opt.probe) {
    const records = [];
    for (const p of workers().sort((a, b) => a - b)) records.push([p, await probeWorker(probes, p)]);
    const columns = records.flatMap(([, r]) => [() => r?.before, () => r?.after]);
    process.stdout.write('\nwhere each worker\'s memory is after the run (MiB; memory-probe.mjs)\n' +
      table(['MiB', ...records.flatMap(([p]) => [`worker ${p}`, `${p} after GC`])], breakdownRows(columns)) + '\n');
  }
  if (opt.keep) process.stdout.write(`temp dir kept: ${dir}\n`);
  return plateau && !restarted ? 0 : 1;
}

runMain('memory-soak', main);
