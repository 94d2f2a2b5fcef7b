import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { alive, copyPackage, Daemon, runCli, freePort, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hello\\n" }
`;

function setVersion(bin: string, version: string): void {
  const pkg = path.resolve(path.dirname(bin), '../package.json');
  const json = JSON.parse(fs.readFileSync(pkg, 'utf8'));
  json.version = version;
  fs.writeFileSync(pkg, JSON.stringify(json));
}


async function startCopy(t: { teardown(fn: () => unknown): void }, opts: { workers?: number; adminPort?: number } = {}) {
  const d = new Daemon(t);
  const bin = copyPackage(fs.mkdtempSync(path.join(d.dir, 'pkg-')));
  setVersion(bin, '1.0.0-old');
  await d.start({ body: BODY, bin, workers: opts.workers ?? 2, ...(opts.adminPort ? { adminPort: opts.adminPort } : {}) });
  return { d, bin, port: await d.port() };
}

t.test('USR2 starts a new master from the code on disk on the same sockets; WINCH and QUIT retire the old one', async (t) => {
  const { d, bin, port } = await startCopy(t);
  const old = d.masterPid;
  setVersion(bin, '2.0.0-new');
  d.signal('SIGUSR2', old);
  const fresh = await waitFor('a new master in the pid file', 20_000, () => {
    try {
      const p = d.masterPid;
      return p !== old ? p : undefined;
    } catch {
      return undefined;
    }
  });
  t.equal(fs.readFileSync(d.pidFile + '.oldbin', 'utf8').trim(), String(old), '.oldbin names the old master');
  const status = await waitFor('/status from the new master', 10_000, async () => {
    const s = await d.status(fresh).catch(() => undefined);
    return s && s.pid === fresh ? s : undefined;
  });
  t.equal(status.version, '2.0.0-new', 'the new master runs the new code');
  t.equal(status.generation, 2, 'generation numbers go on from the old master, never repeat');
  t.match(status.upgrade, { oldMaster: old, newMaster: fresh });
  t.equal((await request(port, '/')).status, 200, 'the listener serves throughout');

  const oldWorkers = d.workerPids(old).filter((p) => p !== fresh);
  t.equal(oldWorkers.length, 2);
  d.signal('SIGWINCH', old);
  await waitFor('old workers drained', 15_000, () => (oldWorkers.every((p) => !alive(p)) ? true : undefined));
  t.ok(alive(old), 'the old master stays after WINCH');
  for (let i = 0; i < 10; i++) t.equal((await request(port, '/')).status, 200, 'new workers serve');

  d.signal('SIGQUIT', old);
  await waitFor('old master gone', 15_000, () => (alive(old) ? undefined : true));
  t.notOk(fs.existsSync(d.pidFile + '.oldbin'), '.oldbin removed');
  t.equal(d.masterPid, fresh);
  t.equal((await request(port, '/')).status, 200);
});

t.test('a new install whose code cannot load leaves the running master serving and restores the pid file', async (t) => {
  const { d, bin, port } = await startCopy(t);
  const old = d.masterPid;
  fs.writeFileSync(path.resolve(path.dirname(bin), '../dist/lib/cli/main.js'), 'this is not javascript (\n');
  d.signal('SIGUSR2', old);
  await d.waitForLine('upgrade failure logged', (l) => typeof l.msg === 'string' && (l.msg as string).startsWith('upgrade failed'), 20_000);
  await waitFor('pid file restored', 10_000, () => (d.pidFromFile() === old ? true : undefined));
  t.notOk(fs.existsSync(d.pidFile + '.oldbin'));
  for (let i = 0; i < 10; i++) t.equal((await request(port, '/')).status, 200);
  const s = await d.status(old);
  t.equal(s.upgrade, null);
});

t.test('rollback: HUP to the WINCHed old master restarts its workers, QUIT to the new master restores the pid file', async (t) => {
  const { d, bin, port } = await startCopy(t);
  const old = d.masterPid;
  setVersion(bin, '2.0.0-bad');
  d.signal('SIGUSR2', old);
  const fresh = await waitFor('new master', 20_000, () => { try { const p = d.masterPid; return p !== old ? p : undefined; } catch { return undefined; } });
  const oldWorkers = d.workerPids(old).filter((p) => p !== fresh);
  d.signal('SIGWINCH', old);
  await waitFor('old workers drained', 15_000, () => (oldWorkers.every((p) => !alive(p)) ? true : undefined));
  d.signal('SIGHUP', old);
  await waitFor('old master has workers again', 15_000, () => (d.workerPids(old).filter((p) => p !== fresh).length === 2 ? true : undefined));
  d.signal('SIGQUIT', fresh);
  await waitFor('new master gone', 15_000, () => (alive(fresh) ? undefined : true));
  await waitFor('pid file restored to the old master', 10_000, () => (d.pidFromFile() === old ? true : undefined));
  t.notOk(fs.existsSync(d.pidFile + '.oldbin'));
  for (let i = 0; i < 10; i++) t.equal((await request(port, '/')).status, 200);
  const s = await waitFor('old master answers /status again', 10_000, async () => {
    const st = await d.status(old).catch(() => undefined);
    return st && st.pid === old ? st : undefined;
  });
  t.equal(s.version, '1.0.0-old');
});

t.test('baton upgrade runs USR2, WINCH and QUIT and reports each step', async (t) => {
  const adminPort = await freePort();
  const { d, bin, port } = await startCopy(t, { adminPort });
  const old = d.masterPid;
  setVersion(bin, '3.0.0');
  const r = await runCli(['upgrade', '-c', d.configFile], { timeoutMs: 60_000 });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /USR2 sent to master/);
  t.match(r.stdout, /WINCH sent to old master/);
  t.match(r.stdout, /upgrade done: master \d+/);
  t.not(d.masterPid, old);
  t.notOk(alive(old));
  t.equal((await request(port, '/')).status, 200);
});

t.test('baton upgrade to code that cannot load exits 5, says the old master keeps serving, and why when /status knows', async (t) => {
  const adminPort = await freePort();
  const { d, bin, port } = await startCopy(t, { adminPort });
  const old = d.masterPid;
  fs.writeFileSync(path.resolve(path.dirname(bin), '../dist/lib/master/main.js'), 'this is not javascript (\n');
  const r = await runCli(['upgrade', '-c', d.configFile], { timeoutMs: 90_000 });
  t.equal(r.code, 5, r.stdout + r.stderr);
  t.match(r.stderr, `upgrade failed: the new master did not become ready; master ${old} keeps serving`);
  const s = await d.status(old);
  const failure = s.lastUpgradeFailure as { reason: string } | null | undefined;
  // The reason comes from the old master's /status (lastUpgradeFailure) where it reports one.
  t.match(r.stderr, failure ? `  reason: ${failure.reason}` : '  the error log says why');
  t.equal(d.masterPid, old);
  t.equal((await request(port, '/')).status, 200);
});
