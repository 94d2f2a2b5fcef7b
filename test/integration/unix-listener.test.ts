/**
 * @module Unix socket listeners against the real daemon: curl --unix-socket, the file's mode and owner, the same
 * socket file across a reload and a binary upgrade, removed when the daemon stops, a stale file from a crash
 * replaced, a file still in use refused, and PROXY protocol on top (HAProxy to a unix socket).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { Daemon, proxyAll, runCli, waitFor, type Tap } from '../helpers/daemon.js';
import { haproxy } from '../helpers/haproxy.js';
import { upstream } from '../helpers/http.js';

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '20', ...args], (err, stdout, stderr) => (err ? reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

async function echoUpstream(t: Tap) {
  return upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']} ${req.url}`));
}

const inode = (file: string) => fs.statSync(file).ino;

t.test('a unix listener is served through its socket file, with the mode and owner asked; its clients are "unix:"', async (t) => {
  const up = await echoUpstream(t);
  const d = new Daemon(t);
  const sock = path.join(d.dir, 'http.sock');
  await d.start({ body: proxyAll(up.url, '  - listen: unix:http.sock\n    mode: "0660"\n    owner: nobody:nogroup') });
  t.equal(await curl(['--unix-socket', sock, 'http://localhost/a']), 'unix: /a', 'X-Forwarded-For says unix:');
  const st = fs.statSync(sock);
  t.ok(st.isSocket());
  t.equal((st.mode & 0o777).toString(8), '660');
  t.equal(st.uid, Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })));
  t.equal(st.gid, Number(execFileSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).split(':')[2]));
  const line = await d.waitForLine('the access-log line', (l) => l.path === '/a', 15_000, d.accessLog);
  t.equal(line.client, 'unix:');
  const listening = await d.waitForLine('listening', (l) => l.msg === 'listening' && l.listener === `unix:${sock}`);
  t.equal(listening.socket, sock, 'the listening line names the socket file');
});

t.test('the socket file is the same across a reload and a binary upgrade, and removed when the daemon stops', async (t) => {
  const up = await echoUpstream(t);
  const d = new Daemon(t);
  const sock = path.join(d.dir, 'http.sock');
  await d.start({ body: proxyAll(up.url, '  - listen: unix:http.sock') });
  const first = inode(sock);
  t.equal(await curl(['--unix-socket', sock, 'http://localhost/before']), 'unix: /before');
  d.signal('SIGHUP');
  await d.waitForLine('generation 2 ready', (l) => l.msg === 'generation ready' && l.generation === 2, 60_000);
  t.equal(inode(sock), first, 'a reload keeps the socket file');
  t.equal(await curl(['--unix-socket', sock, 'http://localhost/reloaded']), 'unix: /reloaded');
  const oldPid = d.masterPid;
  d.signal('SIGUSR2');
  await waitFor('the new master', 60_000, () => (fs.existsSync(`${d.pidFile}.oldbin`) && (d.pidFromFile() ?? oldPid) !== oldPid ? true : undefined));
  await d.waitForLine('the new master serves', (l) => l.msg === 'serving' && l.pid === d.masterPid, 60_000);
  d.signal('SIGWINCH', oldPid);
  d.signal('SIGQUIT', oldPid);
  await waitFor('the old master gone', 60_000, () => (fs.existsSync(`${d.pidFile}.oldbin`) ? undefined : true));
  t.equal(inode(sock), first, 'the old master leaves the file to the new one');
  t.equal(await curl(['--unix-socket', sock, 'http://localhost/upgraded']), 'unix: /upgraded');
  // The new master owns the file alone once it has seen its old master leave (the .oldbin file goes a little
  // earlier: Node 22 is fast enough to stop the new master in between).
  await d.waitForLine('the new master sees the old one leave', (l) => l.msg === 'old master has left; this master may now be upgraded' && l.pid === d.masterPid, 60_000);
  d.signal('SIGQUIT');
  await waitFor('the new master gone', 60_000, () => (d.ownProcesses().length === 0 ? true : undefined));
  t.notOk(fs.existsSync(sock), 'the last master removed it');
});

t.test('a stale socket file left by a crash is replaced; a socket some process listens on is not, and the start fails', async (t) => {
  const up = await echoUpstream(t);
  const d = new Daemon(t);
  const sock = path.join(d.dir, 'http.sock');
  // What a crash leaves: the socket's file, no process behind it.
  execFileSync(process.execPath, ['-e', `require('net')._createServerHandle(${JSON.stringify(sock)}, -1, -1); process.exit(0)`]);
  t.ok(fs.statSync(sock).isSocket());
  await d.start({ body: proxyAll(up.url, '  - listen: unix:http.sock') });
  t.equal(await curl(['--unix-socket', sock, 'http://localhost/after-crash']), 'unix: /after-crash');
  t.ok(d.lines().some((l) => /removed a stale socket file/.test(String(l.msg))), 'the replacement is logged');
  d.signal('SIGTERM');
  await d.waitForExit(30_000);
  t.notOk(fs.existsSync(sock), 'removed at a fast stop too');

  const busy = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => busy.listen(sock, r));
  t.teardown(() => busy.close());
  const second = new Daemon(t);
  await second.start({ body: proxyAll(up.url, `  - listen: unix:${sock}`), expectFailure: true });
  t.equal(await second.waitForExit(60_000), 4, 'exit 4: could not start');
  t.match(second.readLog(), /cannot listen on unix:.*http\.sock: .*is in use by another process/);
  t.ok(fs.statSync(sock).isSocket(), 'the other process keeps its socket');
});

t.test('PROXY protocol on a unix listener: HAProxy in front names the client', async (t) => {
  const up = await echoUpstream(t);
  const d = new Daemon(t);
  const sock = path.join(d.dir, 'pp.sock');
  await d.start({ body: proxyAll(up.url, '  - listen: unix:pp.sock\n    proxy_protocol: true') });
  const [front] = await haproxy(t, d.dir, [{ to: sock, send: 'send-proxy-v2' }]) as [number];
  t.equal(await curl(['--interface', '127.0.0.5', `http://127.0.0.1:${front}/pp`]), '127.0.0.5 /pp');
  const line = await d.waitForLine('the access-log line', (l) => l.path === '/pp', 15_000, d.accessLog);
  t.equal(line.client, '127.0.0.5');
});

t.test('-t checks that a unix listener\'s directory exists and its owner does, naming file:line:col', async (t) => {
  const d = new Daemon(t);
  const file = path.join(d.dir, 'check.yaml');
  fs.writeFileSync(file, [
    'listeners:',
    '  - listen: unix:missing/http.sock',
    '  - listen: unix:ok.sock',
    '    owner: no-such-user-for-baton:no-such-group-for-baton',
    'routes: [{ path: /, return: { status: 200 } }]',
    '',
  ].join('\n'));
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${file}:2:13: listeners.0.listen: cannot create ${d.dir}/missing/http.sock: no directory ${d.dir}/missing`);
  t.match(r.stderr, `${file}:4:12: listeners.1.owner: no user "no-such-user-for-baton" on this machine`);
  t.match(r.stderr, `${file}:4:12: listeners.1.owner: no group "no-such-group-for-baton" on this machine`);
});
