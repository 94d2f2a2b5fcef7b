/**
 * Start-up as an operator sees it: where the daemon serves, why it cannot start (a taken port, a pid file that
 * cannot be written), process warnings in the JSON log, and logs a person can read on a terminal.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { BIN, Daemon, ROOT, runCli, waitFor } from '../helpers/daemon.js';

const RETURN = (listeners: string) => `
listeners:
${listeners}
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

t.test('start-up logs one line per listener with its URL (http and https, with the real port) and one for the admin URL', async (t) => {
  const d = new Daemon(t);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', 'site.key', '-out', 'site.crt'], { cwd: d.dir, stdio: 'pipe' });
  await d.start({ body: RETURN('  - listen: 127.0.0.1:0\n    h2c: true\n  - listen: 127.0.0.3:0\n    tls: { cert: site.crt, key: site.key }') });
  const plain = await d.waitForLine('the http listener', (l) => l.msg === 'listening' && l.listener === '127.0.0.1:0');
  t.match(plain.url, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/$/, 'http:// with the port the OS picked');
  t.equal(plain.h2c, true);
  const tls = await d.waitForLine('the https listener', (l) => l.msg === 'listening' && l.listener === '127.0.0.3:0');
  t.match(tls.url, /^https:\/\/127\.0\.0\.3:[1-9]\d*\/$/);
  const admin = await d.waitForLine('the admin URL', (l) => l.msg === 'admin listening');
  t.match(admin.url, /^http:\/\/127\.0\.0\.2:[1-9]\d*\/status$/);
  const res = await fetch(String(admin.url));
  t.equal(res.status, 200, 'the logged admin URL answers');
  t.equal(d.lines().filter((l) => l.msg === 'listening').length, 2, 'once each');
});

t.test('a listener that cannot be bound at start: exit 4, and the address and the reason on stderr and in the log', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const d = await new Daemon(t).start({ body: RETURN(`  - listen: 127.0.0.1:${port}`), expectFailure: true });
  t.equal(await d.waitForExit(30_000), 4);
  t.match(d.stderr, new RegExp(`baton: cannot start: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(address already in use\\)`));
  t.ok(d.lines().some((l) => typeof l.msg === 'string' && l.msg.includes(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)), 'the error log has it too, written before the exit');
  t.notOk(fs.existsSync(d.pidFile));
});

t.test('a pid file that cannot be written at start: exit 4 naming the path and the errno, never READY', async (t) => {
  const d = new Daemon(t);
  fs.writeFileSync(path.join(d.dir, 'run'), 'a file where the pid directory should be\n');
  d.writeConfig({ body: RETURN('  - listen: 127.0.0.1:0') });
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('pid_file: baton.pid', 'pid_file: run/baton.pid'));
  const child = spawn(process.execPath, [BIN, '-c', d.configFile], { cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += c; });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 4);
  t.match(stderr, new RegExp(`cannot start: cannot write the pid file ${d.dir}/run/baton\\.pid: (EEXIST|ENOTDIR)`));
  t.ok(d.lines().some((l) => l.msg === 'serving') === false, 'it never said it serves');

  // --daemon: the launcher returns because the master exited, not after waiting out upgrade_timeout.
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('shutdown_timeout: 10s', 'shutdown_timeout: 10s\nupgrade_timeout: 10m'));
  const r = await runCli(['--daemon', '-c', d.configFile], { cwd: d.dir, timeoutMs: 120_000 });
  t.equal(r.code, 4);
  t.match(r.stderr, /cannot write the pid file/);
  t.match(r.stderr, /did not start \(exit code 4\)/, 'the launcher saw the master exit');
});

t.test('process warnings of the master and the workers go to the JSON error log, not raw to stderr', async (t) => {
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/warn.mjs')).href;
  const d = await new Daemon(t).start({ env: { NODE_OPTIONS: `--import=${hook}` }, body: RETURN('  - listen: 127.0.0.1:0') });
  const master = await d.waitForLine('the master\'s warning', (l) => l.msg === 'process warning: a test warning from the master', 30_000);
  t.match(master, { role: 'master', level: 'warn', warning: { code: 'BATON_TEST_WARNING', name: 'Warning' } });
  await d.waitForLine('a worker\'s warning', (l) => l.msg === 'process warning: a test warning from the worker' && l.role === 'worker', 30_000);
  t.notMatch(d.stderr, /Warning/, `nothing raw on stderr: ${d.stderr}`);
});

t.test('on a terminal the log is for a person; in a file it is JSON', async (t) => {
  const d = new Daemon(t);
  d.writeConfig({ body: RETURN('  - listen: 127.0.0.1:0') });
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('error: error.log', 'error: stderr'));
  // script(1) gives the daemon a pseudo-terminal; its output is what a person would see.
  const out = path.join(d.dir, 'tty.out');
  const child = spawn('script', ['-qfec', `${process.execPath} ${BIN} -c ${d.configFile}`, out], { cwd: d.dir, stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, NO_COLOR: '1' } });
  t.teardown(() => child.kill('SIGKILL'));
  const text = await waitFor('the serving line on the terminal', 30_000, () => {
    const s = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    return /INFO +master\[\d+\]( g\d+)? serving/.test(s) ? s : undefined;
  });
  t.match(text, /\d\d:\d\d:\d\d\.\d\d\d INFO +master\[\d+\] listening url=http:\/\/127\.0\.0\.1:\d+\//, 'time, level, who, message, fields');
  t.notMatch(text, /"level":/, 'no JSON on the terminal');
  const pid = Number(fs.readFileSync(d.pidFile, 'utf8'));
  process.kill(pid, 'SIGQUIT');
  await waitFor('the master gone', 30_000, () => (child.exitCode !== null ? true : undefined));
  t.pass('stopped');
});
