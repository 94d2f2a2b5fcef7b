// scripts/reload-timing — how long baton takes from USR2 to a ready new master, and from HUP to a ready new
// generation, with the access log on; prints the median and worst of each. `scripts/reload-timing --help`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  HOST,
  REPO_DIR,
  cleanup,
  childrenOf,
  die,
  fmtMs,
  freePorts,
  helloBatonYaml,
  httpGet,
  httpJson,
  isAlive,
  log,
  mkTempDir,
  readPidFile,
  signal,
  spawnTracked,
  table,
  tail,
  waitExit,
  waitFor,
} from './common.mjs';
import { median } from './bench-cpu.mjs';
import { breakdown, readTrace, stepsOf, wallNow } from './startup-trace.mjs';

const HELP = `usage: scripts/reload-timing [options]

Starts an upstream (a Node http server in this process) and the real baton (access log on, 2 workers by
default) in a temp dir, then:
  N upgrades: USR2 to the master; "ready" = the pid file names a new live master (it writes the pid file only
              once its workers are all ready) and GET /status answers from that pid with a serving generation;
              then WINCH + QUIT the old master and wait for it to leave (not timed)
  N reloads:  HUP to the master; "ready" = GET /status reports a new serving generation
Polls every 5 ms (pid file) and 10 ms (/status). Prints every measure, the median and the worst.

  --upgrades N   USR2 upgrades (default 10)
  --reloads N    HUP reloads (default 10)
  --workers N    baton workers (default 2)
  --node PATH    node binary to run baton under (default: the one running this script)
  --baton PATH   baton executable (default: ${path.join(REPO_DIR, 'bin/baton')})
  --trace        also print where the time goes: every start-up step baton traces (BATON_STARTUP_TRACE),
                 as ms after the signal, median over the runs (first/last when each worker reaches it), with
                 the CPU ms the process had used by then (steadier than wall time on a loaded machine)
  --keep         keep the temp dir
`;

function parseArgs(argv) {
  const o = { upgrades: 10, reloads: 10, workers: 2, node: process.execPath, baton: path.join(REPO_DIR, 'bin/baton'), keep: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    const int = () => {
      const n = Number(next());
      if (!Number.isInteger(n) || n < 0 || n > 1000) die(`${a} needs an integer 0..1000`);
      return n;
    };
    switch (a) {
      case '-h': case '--help': process.stdout.write(HELP); process.exit(0);
      case '--upgrades': o.upgrades = int(); break;
      case '--reloads': o.reloads = int(); break;
      case '--workers': o.workers = Math.max(1, int()); break;
      case '--node': o.node = path.resolve(next()); break;
      case '--baton': o.baton = path.resolve(next()); break;
      case '--keep': o.keep = true; break;
      case '--trace': o.trace = true; break;
      default: die(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  cleanup.install();
  const dir = mkTempDir('baton-reload-timing-');
  const [port, adminPort] = await freePorts(2);
  const upstream = http.createServer((req, res) => res.end('hello\n'));
  await new Promise((r) => upstream.listen(0, HOST, r));
  const pidFile = path.join(dir, 'baton.pid');
  fs.writeFileSync(
    path.join(dir, 'baton.yaml'),
    helloBatonYaml({ workers: opt.workers, port, admin: adminPort, upPort: upstream.address().port, h2c: false, compress: null, top: 'shutdown_timeout: 5s\nupgrade_timeout: 60s' }),
  );
  cleanup.addPidFile(pidFile);
  cleanup.addPidFile(pidFile + '.oldbin');
  const traceFile = path.join(dir, 'startup-trace.jsonl');
  const env = opt.trace ? { ...process.env, BATON_STARTUP_TRACE: traceFile } : process.env;
  const cp = spawnTracked(opt.node, [opt.baton, '-c', path.join(dir, 'baton.yaml')], { cwd: dir, env, stdout: path.join(dir, 'baton.out'), stderr: path.join(dir, 'baton.out') });
  const up = await waitFor(async () => (await httpGet(port, '/', { timeout: 1000 }))?.status === 200, 30_000, 100);
  if (!up) die(`baton did not start:\n${tail(path.join(dir, 'baton.out'))}\n${tail(path.join(dir, 'error.log'))}`, 1);
  const status = () => httpJson(adminPort, '/status', { timeout: 2000 });
  const version = execFileSync(opt.node, ['--version'], { encoding: 'utf8' }).trim();
  log(`baton ${cp.pid} under node ${version}, ${opt.workers} workers, temp dir ${dir}; load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // a few requests so that the access log file is open and written, as in service
  for (let i = 0; i < 20; i++) await httpGet(port, '/');

  const failures = [];
  const upgrades = [];
  for (let n = 1; n <= opt.upgrades; n++) {
    const oldPid = readPidFile(pidFile);
    const w0 = wallNow();
    const t0 = process.hrtime.bigint();
    signal(oldPid, 'SIGUSR2');
    const newPid = await waitFor(() => {
      const p = readPidFile(pidFile);
      return p && p !== oldPid && isAlive(p) ? p : null;
    }, 60_000, 5);
    const tPid = Number(process.hrtime.bigint() - t0) / 1e6;
    const s = newPid && (await waitFor(async () => {
      const x = await status();
      return x && x.pid === newPid && x.generation !== null ? x : null;
    }, 30_000, 10));
    const tStatus = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!newPid || !s) {
      failures.push(`upgrade ${n}: no ready new master (pid file ${readPidFile(pidFile)})`);
      break;
    }
    upgrades.push({ n, oldPid, newPid, pid: tPid, status: tStatus, w0, w1: wallNow() });
    log(`upgrade ${n}: ${oldPid} -> ${newPid}: pid file after ${fmtMs(tPid)}, /status after ${fmtMs(tStatus)}`);
    signal(oldPid, 'SIGWINCH');
    await waitFor(() => childrenOf(oldPid).filter((p) => p !== newPid).length === 0, 30_000, 50);
    signal(oldPid, 'SIGQUIT');
    if (!(await waitExit(oldPid, 30_000))) failures.push(`upgrade ${n}: old master ${oldPid} did not leave after QUIT`);
    // the new master learns that its old master left a moment after it is gone; a USR2 before that is refused
    if (!(await waitFor(async () => (await status())?.upgrade === null, 30_000, 10))) failures.push(`upgrade ${n}: /status still shows an upgrade after the old master left`);
  }

  const reloads = [];
  for (let n = 1; n <= opt.reloads && !failures.length; n++) {
    const pid = readPidFile(pidFile);
    const g0 = (await status())?.generation;
    const w0 = wallNow();
    const t0 = process.hrtime.bigint();
    signal(pid, 'SIGHUP');
    const s = await waitFor(async () => {
      const x = await status();
      return x && x.generation !== null && x.generation !== g0 ? x : null;
    }, 30_000, 10);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!s) {
      failures.push(`reload ${n}: no new generation after HUP`);
      break;
    }
    reloads.push({ n, from: g0, to: s.generation, ms, w0, w1: wallNow() });
    log(`reload ${n}: generation ${g0} -> ${s.generation} after ${fmtMs(ms)}`);
    // let the old generation leave before the next one, as a reload in service would
    await waitFor(async () => ((await status())?.workers || []).every((w) => w.generation === s.generation), 30_000, 50);
  }

  const sum = (xs) => (xs.length ? `median ${fmtMs(median(xs))}, worst ${fmtMs(Math.max(...xs))}` : '-');
  const rows = [
    ['USR2 -> new master writes its pid file (workers ready)', upgrades.length, sum(upgrades.map((u) => u.pid))],
    ['USR2 -> /status answered by the new master', upgrades.length, sum(upgrades.map((u) => u.status))],
    ['HUP -> /status reports the new generation', reloads.length, sum(reloads.map((r) => r.ms))],
  ];
  process.stdout.write(
    `\nscripts/reload-timing — baton under node ${version}, ${opt.workers} workers, access log on; ${os.cpus().length} CPUs, load avg now ${os.loadavg()[0].toFixed(2)}\n\n` +
      table(['measure', 'n', 'median / worst'], rows, { leftLast: true }) +
      '\n' +
      (failures.length ? `\nFAILED: ${failures.join('\n        ')}\n` : ''),
  );
  if (opt.trace) {
    const lines = readTrace(traceFile);
    const tables = [
      ['USR2', upgrades.map((u) => stepsOf(lines, u.w0, u.w1, { [u.oldPid]: 'old master', [u.newPid]: 'new master' }))],
      ['HUP', reloads.map((r) => stepsOf(lines, r.w0, r.w1))],
    ];
    for (const [name, runs] of tables) {
      if (!runs.length) continue;
      process.stdout.write(`\n${name}: where the time goes (ms after the signal, median of ${runs.length}; "last" when several processes reach the step)\n\n` +
        table(['step', 'n', 'first', 'last', 'cpu ms'], breakdown(runs)) + '\n');
    }
  }
  upstream.close();
  await cleanup.run();
  if (!opt.keep && !failures.length) fs.rmSync(dir, { recursive: true, force: true });
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    process.stderr.write(`reload-timing: ${err.exitCode ? err.message : err.stack}\n`);
    await cleanup.run();
    process.exit(err.exitCode || 1);
  },
);
