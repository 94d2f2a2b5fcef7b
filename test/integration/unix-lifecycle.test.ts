/**
 * @module Unix sockets over a daemon's life: a reload that drops a unix listener removes its file and keeps the
 * others, and an admin listener on a unix socket serves curl and the CLI (status, reload); every file removed at
 * stop. Its own file: each integration file must finish within tap's per-file timeout on a loaded machine.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Daemon, proxyAll, runCli, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '20', ...args], (err, stdout, stderr) => (err ? reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const inode = (file: string) => fs.statSync(file).ino;

t.test('a reload that drops a unix listener removes its file and keeps the other; an admin listener on a unix socket serves curl and the CLI', async (t) => {
  const up = await upstream(t, (req, res) => res.end(`${req.headers['x-forwarded-for']} ${req.url}`));
  const d = new Daemon(t);
  const kept = path.join(d.dir, 'kept.sock');
  const dropped = path.join(d.dir, 'dropped.sock');
  const admin = path.join(d.dir, 'admin.sock');
  const opts = { adminListen: 'unix:admin.sock', body: proxyAll(up.url, '  - listen: unix:kept.sock\n  - listen: unix:dropped.sock') };
  await d.start(opts);
  t.equal(await curl(['--unix-socket', dropped, 'http://localhost/dropped']), 'unix: /dropped');
  t.match(await curl(['--unix-socket', admin, 'http://localhost/metrics']), /^baton_build_info\{/m, 'curl reads /metrics through the admin socket');
  const status = await runCli(['status', '-c', d.configFile]);
  t.equal(status.code, 0, `baton status reaches the admin socket: ${status.stderr}`);
  const keptInode = inode(kept);
  d.writeConfig({ ...opts, body: proxyAll(up.url, '  - listen: unix:kept.sock') });
  const reload = await runCli(['reload', '-c', d.configFile]);
  t.equal(reload.code, 0, `baton reload goes through the admin socket and reports success: ${reload.stdout}${reload.stderr}`);
  await waitFor('the dropped listener\'s file removed', 30_000, () => (fs.existsSync(dropped) ? undefined : true));
  t.equal(inode(kept), keptInode, 'the kept listener\'s file is the same');
  t.equal(await curl(['--unix-socket', kept, 'http://localhost/kept']), 'unix: /kept');
  d.signal('SIGQUIT');
  await waitFor('the master gone', 60_000, () => (d.ownProcesses().length === 0 ? true : undefined));
  t.notOk(fs.existsSync(kept), 'stop removes the listener\'s file');
  t.notOk(fs.existsSync(admin), 'and the admin socket\'s');
});
