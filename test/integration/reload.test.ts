import fs from 'node:fs';
import t from 'tap';
import { alive, copyPackage, Daemon, freePort, runCli, waitFor } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

const body = (text: string, extra = '') => `
listeners:
  - listen: 127.0.0.1:0
${extra}
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

t.test('HUP applies a new config: a new generation serves and the old one leaves', async (t) => {
  const d = await new Daemon(t).start({ body: body('one'), workers: 2 });
  const port = await d.port();
  t.equal((await request(port, '/')).body, 'one');
  const oldWorkers = d.workerPids();
  d.writeConfig({ body: body('two'), workers: 3 });
  d.signal('SIGHUP');
  await waitFor('the new body', 60_000, async () => ((await request(port, '/')).body === 'two' ? true : undefined));
  await waitFor('old workers gone, three new ones', 60_000, () => {
    const w = d.workerPids();
    return w.length === 3 && oldWorkers.every((p) => !w.includes(p)) ? true : undefined;
  });
  const s = await d.status();
  t.equal(s.generation, 2);
  t.equal(d.masterPid, s.pid, 'same master');
});

t.test('an invalid HUP logs file:line:col and the running config keeps serving', async (t) => {
  const d = await new Daemon(t).start({ body: body('one') });
  const port = await d.port();
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8') + '\nbogus_key: 1\n');
  d.signal('SIGHUP');
  const line = await d.waitForLine('reload failure', (l) => typeof l.msg === 'string' && (l.msg as string).startsWith('reload failed'));
  t.match((line.errors as string[])[0], new RegExp(`${d.configFile}:\\d+:1: .*bogus_key`));
  t.equal((await request(port, '/')).body, 'one');
  t.equal((await d.status()).generation, 1);
});

t.test('a listener added on reload opens, and one removed closes once no generation uses it', async (t) => {
  const [a, b] = [await freePort(), await freePort()];
  const d = await new Daemon(t).start({ body: body('x').replace('127.0.0.1:0', `127.0.0.1:${a}`) });
  t.equal((await request(a, '/')).status, 200);
  d.writeConfig({ body: body('y').replace('127.0.0.1:0', `127.0.0.1:${b}`) });
  d.signal('SIGHUP');
  await waitFor('new listener', 15_000, async () => ((await request(b, '/').catch(() => null))?.body === 'y' ? true : undefined));
  await waitFor('old listener closed', 15_000, async () => ((await request(a, '/').catch(() => null)) === null ? true : undefined));
  t.pass('listeners diffed by address');
});

t.test('baton reload reports success, and reports the errors with a non-zero exit when the config is bad', async (t) => {
  const adminPort = await freePort();
  const d = await new Daemon(t).start({ body: body('one'), adminPort });
  const port = await d.port();
  d.writeConfig({ body: body('two'), adminPort });
  const ok = await runCli(['reload', '-c', d.configFile]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /reload ok: generation 2 is serving/);
  // Old workers may accept for the moment it takes the drain message to reach them.
  await waitFor('the new config serving', 3000, async () => ((await request(port, '/')).body === 'two' ? true : undefined));
  // A config that cannot even be read: the CLI reports it, with positions, before asking the daemon; like any
  // failed reload it exits 5 (the README's exit code), and the daemon is unchanged.
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('workers: 1', 'workers: zero'));
  const bad = await runCli(['reload', '-c', d.configFile]);
  t.equal(bad.code, 5);
  t.match(bad.stderr, new RegExp(`${d.configFile}:\\d+:\\d+: workers`));
  t.match(bad.stderr, /reload failed: the configuration is invalid; nothing was sent/);
  // A valid config the daemon cannot apply (its new port is taken): the daemon's own answer, exit 5.
  const taken = await upstream(t, (_req, res) => res.end());
  d.writeConfig({ body: body('three', '').replace('127.0.0.1:0', `127.0.0.1:${taken.port}`), adminPort });
  const refused = await runCli(['reload', '-c', d.configFile]);
  t.equal(refused.code, 5);
  t.match(refused.stderr, new RegExp(`reload failed, nothing changed:\\n.*cannot listen on 127.0.0.1:${taken.port}: EADDRINUSE`));
  t.equal((await request(port, '/')).body, 'two');
  t.equal((await d.status()).generation, 2);
  const status = await runCli(['status', '-c', d.configFile]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, new RegExp(`^baton \\S+  master ${d.masterPid}  running  generation 2`));
  t.match(status.stdout, /worker +\d+ +gen 2 +ready/);
});

t.test('WINCH without an upgrade drains the workers and keeps the master and its sockets', async (t) => {
  const d = await new Daemon(t).start({ body: body('one'), workers: 2 });
  const port = await d.port();
  const workers = await waitFor('workers', 10_000, () => { const w = d.workerPids(); return w.length === 2 ? w : undefined; });
  d.signal('SIGWINCH');
  await waitFor('workers gone', 15_000, () => (d.workerPids().length === 0 ? true : undefined));
  t.ok(alive(d.masterPid), 'master stays');
  t.notOk(workers.some(alive), 'the old workers are gone');
  // The socket is still held: a HUP brings workers back and the same port serves.
  d.signal('SIGHUP');
  await waitFor('serving again', 15_000, async () => ((await request(port, '/').catch(() => null))?.status === 200 ? true : undefined));
  t.pass();
});

t.test('a reload whose workers cannot start fails, and the running generation keeps serving', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  // Workers of the new config run as nobody, who cannot read the code in this root-only copy: they die at once.
  const d = new Daemon(t);
  const pkg = fs.mkdtempSync(`${d.dir}/pkg-`);
  const bin = copyPackage(pkg);
  fs.chmodSync(pkg, 0o700);
  fs.chmodSync(d.dir, 0o755);
  await d.start({ body: body('one'), bin });
  const port = await d.port();
  d.writeConfig({ body: body('two'), top: 'user: nobody' });
  d.signal('SIGHUP');
  const line = await d.waitForLine('reload failure', (l) => typeof l.msg === 'string' && (l.msg as string).startsWith('reload failed, the running generation keeps serving'));
  t.match(line.msg, /exited .* before it was ready/);
  t.equal((await request(port, '/')).body, 'one');
  const s = await d.status();
  t.equal(s.generation, 1);
  t.equal((s.workers as unknown[]).length, 1);
});

t.test('a reload that moves the error log and the pid file moves the master too', async (t) => {
  const d = await new Daemon(t).start({ body: body('one') });
  const port = await d.port();
  const yaml = fs.readFileSync(d.configFile, 'utf8').replace('pid_file: baton.pid', 'pid_file: moved.pid').replace('error: error.log', 'error: moved-error.log');
  fs.writeFileSync(d.configFile, yaml);
  const master = d.masterPid;
  d.signal('SIGHUP');
  await waitFor('the new pid file', 15_000, () => (fs.existsSync(`${d.dir}/moved.pid`) ? true : undefined));
  t.equal(fs.readFileSync(`${d.dir}/moved.pid`, 'utf8').trim(), String(master));
  await waitFor('old pid file removed', 5000, () => (fs.existsSync(d.pidFile) ? undefined : true));
  d.signal('SIGUSR1', master);
  await waitFor('master lines in the new error log', 5000, () => (d.readLog(`${d.dir}/moved-error.log`).includes('"role":"master"') ? true : undefined));
  t.equal((await request(port, '/')).body, 'one');
  d.signal('SIGQUIT', master);
  await d.waitForExit();
  t.notOk(fs.existsSync(`${d.dir}/moved.pid`), 'the moved pid file is removed at exit');
});
