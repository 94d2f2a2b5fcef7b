import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { alive, BIN, copyPackage, Daemon, runCli, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const BODY = (listen = '127.0.0.1:0') => `
listeners:
  - listen: ${listen}
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

t.test('--daemon prints the master pid and where its logs go, then nothing of it holds the launching terminal', async (t) => {
  const d = new Daemon(t);
  d.writeConfig({ body: BODY() });
  // Pipes stand in for the terminal: they reach end-of-file only once no process holds their write ends.
  const launcher = spawn(process.execPath, [BIN, '--daemon', '-c', d.configFile], { cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  launcher.stdout.on('data', (c) => { stdout += c; });
  launcher.stderr.on('data', (c) => { stderr += c; });
  const closed = Promise.all([new Promise((r) => launcher.stdout.once('close', r)), new Promise((r) => launcher.stderr.once('close', r))]);
  const code = await new Promise<number | null>((r) => launcher.once('exit', r));
  t.equal(code, 0, stderr);
  const pid = d.masterPid;
  t.match(stdout, `baton: master ${pid} is serving (pid file ${d.pidFile})`);
  t.match(stdout, `error log: ${d.errorLog}`);
  t.match(stdout, `access log: ${d.accessLog}`);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('the launcher\'s stdout/stderr are still held open after it exited')), 30_000); });
  await Promise.race([closed, late]).finally(() => clearTimeout(timer));
  t.ok(alive(pid), 'the master runs on, detached');
  t.equal(fs.readlinkSync(`/proc/${pid}/fd/1`), '/dev/null', 'stdout is /dev/null');
  t.equal(fs.readlinkSync(`/proc/${pid}/fd/2`), d.errorLog, 'stderr is the error log');
  const port = await d.port();
  t.equal((await request(port, '/')).status, 200);
  t.equal((await runCli(['-s', 'quit', '-c', d.configFile])).code, 0);
  await waitFor('master gone', 15_000, () => (alive(pid) ? undefined : true));
});

t.test('--daemon refuses logs on the standard streams, which are gone once it detaches', async (t) => {
  const d = new Daemon(t);
  d.writeConfig({ body: BODY(), access: 'stdout' });
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('error: error.log', 'error: stderr'));
  const r = await runCli(['--daemon', '-c', d.configFile], { cwd: d.dir });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`${d.configFile}:\\d+:\\d+: log.error: stderr is gone once --daemon detaches: log to a file`));
  t.match(r.stderr, new RegExp(`${d.configFile}:\\d+:\\d+: log.access: stdout is gone once --daemon detaches: log to a file \\(or off\\)`));
  t.notOk(fs.existsSync(d.pidFile), 'nothing started');
});

t.test('--daemon whose master cannot start exits 4 and shows why, from what the master wrote to its error log', async (t) => {
  const d = new Daemon(t);
  // A new install whose master code does not load: Node's own report goes to fd 2, which is the error log.
  const bin = copyPackage(fs.mkdtempSync(path.join(d.dir, 'pkg-')));
  fs.writeFileSync(path.resolve(path.dirname(bin), '../dist/lib/master/main.js'), 'this is not javascript (\n');
  d.writeConfig({ body: BODY() });
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, '--daemon', '-c', d.configFile], { cwd: d.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('close', (code) => resolve({ code, stderr }));
  });
  t.equal(r.code, 4, r.stderr);
  t.match(r.stderr, /baton: the master did not start \(exit code 1\)/);
  t.match(r.stderr, `its error log (${d.errorLog}) says:`);
  t.match(r.stderr, /SyntaxError/, 'the reason, as the master wrote it');
  t.notOk(fs.existsSync(d.pidFile), 'no pid file');
});
