// scripts/syscall-audit — which system calls baton makes, checked against conf/baton.service's SystemCallFilter.
//
// Runs the real daemon under `strace -f` through start-up, proxied and local requests, a reload (HUP), a log reopen
// (USR1), a binary upgrade (USR2 → WINCH → QUIT, with systemd-notify talking to a stand-in notify socket) and a
// graceful stop, then lists every system call seen and the ones the unit's filter would refuse. Needs strace and
// systemd-analyze. A deterministic measure (which calls, not how fast): run it after a Node upgrade.
//   scripts/syscall-audit [--node PATH]     (default: the node running this script)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const node = args[0] === '--node' && args[1] ? path.resolve(args[1]) : process.execPath;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Live children of `pid` (a master's workers, a systemd-notify it started); zombies count as gone. */
function childrenOf(pid) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}

const alive = (pid) => { try { return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

/** Some line of the daemon's JSON error log matches `pred`. */
function logged(file, pred) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return false; }
  return text.split('\n').some((line) => { try { return pred(JSON.parse(line)); } catch { return false; } });
}

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

const get = (port, p) => new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }).on('error', () => resolve(0));
});

/** The unit's filter: SystemCallFilter= allow lists, then ~ deny lists, groups expanded. */
function unitFilter() {
  const unit = fs.readFileSync(path.join(REPO, 'conf/baton.service'), 'utf8');
  const groups = new Map();
  let current = null;
  for (const line of execFileSync('systemd-analyze', ['syscall-filter'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')) {
    // A group's name starts a line; its members (calls and nested @groups) are indented below it.
    const t = line.trim();
    if (line.startsWith('@')) groups.set((current = t.split(/\s/)[0]), []);
    else if (current && t && !t.startsWith('#')) groups.get(current).push(t.split(/\s/)[0]);
  }
  const expand = (name, out = new Set()) => {
    if (!name.startsWith('@')) out.add(name);
    else for (const m of groups.get(name) ?? []) expand(m, out);
    return out;
  };
  let allowed = null;
  for (const m of unit.matchAll(/^SystemCallFilter=(~?)(.*)$/gm)) {
    const names = new Set(m[2].trim().split(/\s+/).flatMap((n) => [...expand(n)]));
    if (m[1] === '~') for (const n of names) allowed?.delete(n);
    else allowed = new Set([...(allowed ?? []), ...names]);
  }
  for (const n of expand('@default')) allowed?.add(n);
  return allowed;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-syscalls-'));
  const children = [];
  try {
    const upstream = http.createServer((req, res) => res.end('upstream\n'));
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    const [port, admin] = [await freePort(), await freePort()];
    fs.writeFileSync(path.join(dir, 'baton.yaml'), [
      'pid_file: baton.pid', 'workers: 2', 'log: { error: error.log, access: access.log }', `admin: { listen: "127.0.0.1:${admin}" }`,
      `listeners: [{ listen: "127.0.0.1:${port}" }]`, `upstreams: { app: { targets: [{ url: "http://127.0.0.1:${upstream.address().port}" }] } }`,
      'routes: [{ path: /up, upstream: app }, { path: /, return: { status: 200, body: "ok" } }]', '',
    ].join('\n'));
    const notify = spawn('python3', [path.join(REPO, 'test/fixtures/fake-notify.py'), path.join(dir, 'notify.sock'), '120'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(notify);
    await new Promise((r) => notify.stdout.once('data', r));
    const trace = path.join(dir, 'trace');
    const daemon = spawn('strace', ['-f', '-qq', '-o', trace, node, path.join(REPO, 'bin/baton'), '-c', path.join(dir, 'baton.yaml')], {
      cwd: dir, stdio: 'ignore', env: { ...process.env, NOTIFY_SOCKET: path.join(dir, 'notify.sock') },
    });
    children.push(daemon);
    const pidFile = path.join(dir, 'baton.pid');
    const readPid = () => { try { return Number(fs.readFileSync(pidFile, 'utf8')); } catch { return undefined; } };
    const first = await waitFor('the master', 60_000, readPid);
    await waitFor('serving', 60_000, async () => (await get(port, '/')) === 200);
    for (let i = 0; i < 20; i++) await Promise.all([get(port, '/'), get(port, '/up'), get(admin, '/status'), get(admin, '/metrics')]);
    // Each step waits for its outcome (not a fixed time): what it makes the processes do is then in the trace.
    const errorLog = path.join(dir, 'error.log');
    const gen1 = childrenOf(first);
    process.kill(first, 'SIGHUP');
    await waitFor('the reload: generation 2 ready, generation 1 drained and gone', 60_000, () => logged(errorLog, (l) => l.msg === 'generation ready' && l.generation === 2) && gen1.every((p) => !alive(p)));
    fs.renameSync(path.join(dir, 'access.log'), path.join(dir, 'access.log.1'));
    process.kill(first, 'SIGUSR1');
    await waitFor('the access log reopened', 60_000, () => logged(errorLog, (l) => l.msg === 'reopening log files') && fs.existsSync(path.join(dir, 'access.log')));
    process.kill(first, 'SIGUSR2');
    // The new master writes the pid file once its workers are ready.
    const second = await waitFor('the new master', 60_000, () => { const p = readPid(); return p && p !== first ? p : undefined; });
    await waitFor('the new master\'s workers', 60_000, () => childrenOf(second).length >= 2);
    // The new master is a child of the old one too: it stays.
    const gen2 = childrenOf(first).filter((p) => p !== second);
    process.kill(first, 'SIGWINCH');
    await waitFor('the old master\'s workers drained and gone', 60_000, () => gen2.every((p) => !alive(p)));
    process.kill(first, 'SIGQUIT');
    for (let i = 0; i < 20; i++) await Promise.all([get(port, '/'), get(port, '/up')]);
    process.kill(second, 'SIGQUIT');
    await new Promise((r) => daemon.once('exit', r));
    upstream.close();

    const seen = new Map();
    for (const line of fs.readFileSync(trace, 'utf8').split('\n')) {
      const m = /^\d+\s+([a-z_0-9]+)\(/.exec(line);
      if (m) seen.set(m[1], (seen.get(m[1]) ?? 0) + 1);
    }
    const allowed = unitFilter();
    const refused = [...seen.keys()].filter((n) => !allowed.has(n)).sort();
    const version = execFileSync(node, ['-v'], { encoding: 'utf8' }).trim();
    process.stdout.write(`node ${version}: ${seen.size} distinct system calls, ${[...seen.values()].reduce((a, b) => a + b, 0)} calls\n`);
    process.stdout.write(`${[...seen.keys()].sort().join(' ')}\n`);
    process.stdout.write(refused.length ? `outside conf/baton.service's SystemCallFilter (EPERM under systemd): ${refused.map((n) => `${n} (${seen.get(n)}x)`).join(', ')}\n` : 'all allowed by conf/baton.service\n');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`syscall-audit: ${err.message}\n`);
  process.exit(1);
});
