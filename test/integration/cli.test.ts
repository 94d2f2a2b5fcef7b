import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { alive, freePort, ROOT, runCli } from '../helpers/daemon.js';

const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

function tmpConfig(t: { teardown(fn: () => void): void }, yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'baton.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

t.test('-v prints the version from package.json', async (t) => {
  const r = await runCli(['-v']);
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), `baton ${version}`);
});

t.test('-h prints usage and exits 0; an unknown argument is a usage error', async (t) => {
  const help = await runCli(['-h']);
  t.equal(help.code, 0);
  t.match(help.stdout, /baton -s reload\|reopen\|quit\|stop\|upgrade/);
  const bad = await runCli(['--frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown argument "--frobnicate"/);
  const verb = await runCli(['-s', 'explode']);
  t.equal(verb.code, 2);
  t.match(verb.stderr, /unknown signal verb "explode"/);
});

t.test('-t accepts the shipped conf/baton.yaml', async (t) => {
  const r = await runCli(['-t', '-c', path.join(ROOT, 'conf/baton.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^configuration ok/);
});

t.test('-t reports every problem as file:line:col and exits 1', async (t) => {
  const file = tmpConfig(t, [
    'workers: many',
    'shutdown_timeout: 30 seconds',
    'listeners:',
    '  - listen: 127.0.0.1:99999',
    'upstreams:',
    '  app:',
    '    targets: [{ url: "http://127.0.0.1:9001" }]',
    'routes:',
    '  - path: /',
    '    upstream: nope',
    'colour: blue',
    '',
  ].join('\n'));
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith(file));
  t.ok(lines.length >= 5, `all problems reported at once:\n${r.stderr}`);
  t.match(r.stderr, new RegExp(`${file}:1:10: .*workers`));
  t.match(r.stderr, new RegExp(`${file}:2:19: .*`));
  t.match(r.stderr, new RegExp(`${file}:4:13: .*`));
  t.match(r.stderr, new RegExp(`${file}:10:15: .*nope`));
  t.match(r.stderr, new RegExp(`${file}:11:1: .*colour`));
});

t.test('-s with no pid file says so and exits 3', async (t) => {
  const file = tmpConfig(t, 'listeners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n');
  const r = await runCli(['-s', 'reload', '-c', file]);
  t.equal(r.code, 3);
  t.match(r.stderr, /pid file .*baton\.pid does not exist/);
});

t.test('-s with a pid file naming no process says so and exits 3', async (t) => {
  const file = tmpConfig(t, 'listeners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n');
  // pid_max is at most 2^22 on Linux: this pid cannot exist.
  fs.writeFileSync(path.join(path.dirname(file), 'baton.pid'), '4194305\n');
  const r = await runCli(['-s', 'quit', '-c', file]);
  t.equal(r.code, 3);
  t.match(r.stderr, /names process 4194305, which is not running/);
});

/** A process that is not baton, standing where a stale pid file points (the kernel reuses pids). */
async function stranger(t: { teardown(fn: () => void): void }): Promise<number> {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  await new Promise((r) => child.once('spawn', r));
  return child.pid!;
}

t.test('-s, reload and upgrade refuse a pid file naming a process that is not a baton master, and signal nothing', async (t) => {
  const admin = await freePort();
  const file = tmpConfig(t, `admin: { listen: "127.0.0.1:${admin}" }\nlisteners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n`);
  const pid = await stranger(t);
  const pidFile = path.join(path.dirname(file), 'baton.pid');
  fs.writeFileSync(pidFile, `${pid}\n`);
  for (const args of [['-s', 'quit', '-c', file], ['-s', 'reopen', '--pid-file', pidFile], ['reload', '-c', file], ['upgrade', '-c', file]]) {
    const r = await runCli(args);
    t.equal(r.code, 3, `baton ${args.join(' ')} exits 3`);
    t.match(r.stderr, new RegExp(`names process ${pid}, which is not a baton master \\(it runs: sleep 120\\); the pid file is stale`), args[0]);
  }
  t.ok(alive(pid), 'the stranger got no QUIT, USR1 or USR2');
});

t.test('-s with --pid-file never reads the config, which may be broken; --pid-file goes with -s only', async (t) => {
  const file = tmpConfig(t, 'listeners: [oops\n');
  const missing = path.join(path.dirname(file), 'nope.pid');
  const r = await runCli(['-s', 'reopen', '-c', file, '--pid-file', missing]);
  t.equal(r.code, 3, 'no master, but no config error either');
  t.match(r.stderr, /pid file .*nope\.pid does not exist/);
  t.notMatch(r.stderr, /baton\.yaml:/);
  const usage = await runCli(['status', '--pid-file', missing]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--pid-file goes with -s/);
});

t.test('-t catches what the machine refuses: an unknown user, a pid file or logs that cannot be written, at file:line:col', async (t) => {
  const dir = path.dirname(tmpConfig(t, ''));
  fs.writeFileSync(path.join(dir, 'afile'), '');
  fs.mkdirSync(path.join(dir, 'adir'));
  const file = path.join(dir, 'baton.yaml');
  fs.writeFileSync(file, [
    'pid_file: afile/baton.pid',
    'user: no-such-user-for-baton',
    'log:',
    '  error: afile/logs/error.log',
    '  access: adir',
    'listeners: [{ listen: "127.0.0.1:0" }]',
    'routes: [{ path: /, return: { status: 200 } }]',
    '',
  ].join('\n'));
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${file}:1:11: pid_file: cannot write ${dir}/afile/baton.pid: ${dir}/afile is not a directory`);
  t.match(r.stderr, `${file}:2:7: user: no user "no-such-user-for-baton" on this machine`);
  t.match(r.stderr, `${file}:4:10: log.error: cannot write ${dir}/afile/logs/error.log: ${dir}/afile is not a directory`);
  t.match(r.stderr, `${file}:5:11: log.access: cannot write ${dir}/adir: ${dir}/adir is a directory`);
  t.match(r.stderr, /test failed/);
});

t.test('-t as a user who cannot write the pid file\'s directory fails, naming it', { skip: process.getuid?.() === 0 ? 'root writes everywhere' : false }, async (t) => {
  const file = tmpConfig(t, 'pid_file: ro/baton.pid\nlisteners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n');
  const ro = path.join(path.dirname(file), 'ro');
  fs.mkdirSync(ro, { mode: 0o555 });
  t.teardown(() => fs.chmodSync(ro, 0o755));
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${file}:1:11: pid_file: cannot write ${ro}/baton.pid: ${ro} is not writable (EACCES)`);
});

t.test('-t catches listeners the kernel refuses side by side, at file:line:col', async (t) => {
  const file = tmpConfig(t, 'listeners:\n  - listen: 0.0.0.0:8080\n  - listen: 127.0.0.1:8080\nroutes: [{ path: /, return: { status: 200 } }]\n');
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${file}:3:13: listeners[1].listen: 127.0.0.1:8080 cannot be bound beside 0.0.0.0:8080 (listeners[0])`);
});

t.test('baton status with nothing running says so in one sentence and exits 3', async (t) => {
  const admin = await freePort();
  const file = tmpConfig(t, `admin: { listen: "127.0.0.1:${admin}" }\nlisteners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n`);
  const r = await runCli(['status', '-c', file]);
  t.equal(r.code, 3);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, `baton is not running: nothing answers on http://127.0.0.1:${admin}, and pid file ${path.dirname(file)}/baton.pid does not exist`);
  t.equal(r.stdout, '');
});
