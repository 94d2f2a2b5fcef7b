import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { alive, Daemon, ROOT, freePort, runCli, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const BODY = (listen: string) => `
listeners:
  - listen: ${listen}
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

interface Note { sender: number; fields: Record<string, string> }

/** Start the fake notify socket; returns the messages as they arrive. */
async function fakeSystemd(t: { teardown(fn: () => unknown): void }, dir: string): Promise<{ socket: string; notes: Note[] }> {
  const socket = path.join(dir, 'notify.sock');
  const notes: Note[] = [];
  const child = spawn('python3', [path.join(ROOT, 'test/fixtures/fake-notify.py'), socket, '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  let buf = '';
  let ready!: () => void;
  const isReady = new Promise<void>((r) => { ready = r; });
  child.stdout.on('data', (c) => {
    buf += c;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i)) as Note & { ready?: boolean };
      buf = buf.slice(i + 1);
      if (line.ready) ready();
      else notes.push(line);
    }
  });
  await isReady;
  return { socket, notes };
}


t.test('systemd hears READY, RELOADING/READY, the new MAINPID before the old master leaves, and STOPPING', async (t) => {
  const d = new Daemon(t);
  const sd = await fakeSystemd(t, d.dir);
  await d.start({ body: BODY('127.0.0.1:0'), env: { NOTIFY_SOCKET: sd.socket } });
  const first = d.masterPid;
  const has = (pred: (n: Note) => boolean) => waitFor('a notification', 15_000, () => (sd.notes.some(pred) ? true : undefined));
  await has((n) => n.fields.READY === '1');
  t.match(sd.notes[0], { fields: { READY: '1', MAINPID: String(first) } }, 'READY with MAINPID once serving');

  d.signal('SIGHUP');
  await has((n) => n.fields.STATUS === 'serving, generation 2');
  const afterHup = sd.notes.slice(1).map((n) => Object.keys(n.fields).filter((k) => k !== 'STATUS').join('+'));
  t.same(afterHup, ['RELOADING', 'READY'], 'RELOADING then READY around a reload');

  d.signal('SIGUSR2');
  const fresh = await waitFor('new master', 20_000, () => { try { const p = d.masterPid; return p !== first ? p : undefined; } catch { return undefined; } });
  await has((n) => n.fields.MAINPID === String(fresh));
  t.ok(alive(first), 'the new MAINPID was announced while the old master still runs');
  t.match(sd.notes.at(-1), { fields: { MAINPID: String(fresh), READY: '1' } });
  const count = sd.notes.length;
  d.signal('SIGQUIT', first);
  await waitFor('old master gone', 15_000, () => (alive(first) ? undefined : true));
  t.equal(sd.notes.length, count, 'the old master leaving after a good upgrade says nothing to systemd');

  d.signal('SIGQUIT', fresh);
  await has((n) => n.fields.STOPPING === '1');
  await waitFor('new master gone', 15_000, () => (alive(fresh) ? undefined : true));
});

t.test('a rolled-back upgrade gives MAINPID back to the old master', async (t) => {
  const d = new Daemon(t);
  const sd = await fakeSystemd(t, d.dir);
  await d.start({ body: BODY('127.0.0.1:0'), env: { NOTIFY_SOCKET: sd.socket } });
  const old = d.masterPid;
  d.signal('SIGUSR2');
  const fresh = await waitFor('new master', 20_000, () => { try { const p = d.masterPid; return p !== old ? p : undefined; } catch { return undefined; } });
  await waitFor('new MAINPID', 15_000, () => (sd.notes.some((n) => n.fields.MAINPID === String(fresh)) ? true : undefined));
  d.signal('SIGTERM', fresh);
  await waitFor('MAINPID back', 15_000, () => (sd.notes.at(-1)?.fields.MAINPID === String(old) ? true : undefined));
  t.equal(d.masterPid, old, 'pid file restored');
});

t.test('systemd-socket-activate hands baton its listener, which also survives an upgrade', async (t) => {
  const port = await freePort();
  const d = new Daemon(t);
  // expectFailure: do not wait for the pid file, systemd-socket-activate starts baton at the first connection.
  await d.start({ body: BODY(`127.0.0.1:${port}`), wrapper: ['systemd-socket-activate', '-l', `127.0.0.1:${port}`], expectFailure: true });
  await waitFor('systemd-socket-activate listening', 5000, () => (fs.readFileSync('/proc/net/tcp', 'utf8').includes(`:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`) ? true : undefined));
  // systemd-socket-activate only execs baton at the first connection.
  t.equal((await request(port, '/')).status, 200);
  const master = await waitFor('pid file', 15_000, () => { try { return d.masterPid; } catch { return undefined; } });
  await d.waitForLine('master started', (l) => l.msg === 'master started');
  t.notOk(d.lines().some((l) => typeof l.msg === 'string' && (l.msg as string).includes('cannot listen')), 'the activated socket was adopted, not bound again');
  d.signal('SIGUSR2', master);
  const fresh = await waitFor('new master', 20_000, () => { try { const p = d.masterPid; return p !== master ? p : undefined; } catch { return undefined; } });
  d.signal('SIGQUIT', master);
  await waitFor('old master gone', 15_000, () => (alive(master) ? undefined : true));
  t.equal((await request(port, '/')).status, 200, 'the new master serves on the activated socket');
  t.ok(alive(fresh));
});

t.test('--daemon returns only once the master serves and the pid file names it', async (t) => {
  const d = new Daemon(t);
  d.writeConfig({ body: BODY('127.0.0.1:0') });
  const r = await runCli(['--daemon', '-c', d.configFile], { cwd: d.dir });
  t.equal(r.code, 0, r.stderr);
  const pid = d.masterPid;
  t.ok(alive(pid), 'the pid file names a live master');
  const port = await d.port();
  t.equal((await request(port, '/')).status, 200, 'serving when the launcher returned');
  const stop = await runCli(['-s', 'quit', '-c', d.configFile]);
  t.equal(stop.code, 0);
  await waitFor('master gone', 15_000, () => (alive(pid) ? undefined : true));
});

t.test('started as root with user:, workers run as that user and can still write their logs', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const d = new Daemon(t);
  fs.chmodSync(d.dir, 0o755);
  await d.start({ body: BODY('127.0.0.1:0'), top: 'user: nobody', workers: 2 });
  const port = await d.port();
  const workers = await waitFor('workers', 10_000, () => { const w = d.workerPids(); return w.length === 2 ? w : undefined; });
  for (const w of workers) {
    const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${w}/status`, 'utf8'))![1];
    t.equal(uid, '65534', `worker ${w} runs as nobody`);
  }
  const master = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${d.masterPid}/status`, 'utf8'))![1];
  t.equal(master, '0', 'the master keeps root');
  await request(port, '/', { headers: { 'x-request-id': 'as-nobody' } });
  await waitFor('access line written by a nobody worker', 5000, () => (d.readLog(d.accessLog).includes('as-nobody') ? true : undefined));
  t.equal(fs.statSync(d.accessLog).uid, 65534);
});
