import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { alive, Daemon, ROOT, sleep, waitFor, proxyAll } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

const RETURN_ONLY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hello\\n" }
`;

t.test('the daemon serves, and /status reports version, master pid, generation and workers', async (t) => {
  const d = await new Daemon(t).start({ body: RETURN_ONLY, workers: 2 });
  const port = await d.port();
  const r = await request(port, '/');
  t.equal(r.status, 200);
  t.equal(r.body, 'hello\n');
  const s = await waitFor('two ready workers', 10_000, async () => {
    const st = await d.status();
    return (st.workers as unknown[]).length === 2 ? st : undefined;
  });
  t.equal(s.version, version);
  t.equal(s.pid, d.masterPid);
  t.equal(s.generation, 1);
  t.match(s.workers, [{ pid: Number, generation: 1, state: 'ready' }, { pid: Number, generation: 1, state: 'ready' }]);
  t.equal(fs.readFileSync(d.pidFile, 'utf8'), `${d.masterPid}\n`, 'pid file holds the master pid');
});

t.test('a worker killed with SIGKILL is replaced and the other worker and the listener are untouched', async (t) => {
  const d = await new Daemon(t).start({ body: RETURN_ONLY, workers: 2 });
  const port = await d.port();
  const before = await waitFor('two workers', 10_000, () => { const w = d.workerPids(); return w.length === 2 ? w : undefined; });
  process.kill(before[0], 'SIGKILL');
  const after = await waitFor('a replacement worker', 10_000, () => {
    const w = d.workerPids();
    return w.length === 2 && !w.includes(before[0]) ? w : undefined;
  });
  t.ok(after.includes(before[1]), 'the other worker kept running');
  for (let i = 0; i < 20; i++) t.equal((await request(port, '/')).status, 200);
  const line = await d.waitForLine('respawn log', (l) => typeof l.msg === 'string' && (l.msg as string).includes('died unexpectedly'));
  t.equal(line.worker, before[0]);
});

t.test('QUIT lets an in-flight request finish, then the master exits and removes its pid file', async (t) => {
  let arrived!: () => void;
  const seen = new Promise<void>((r) => { arrived = r; });
  const up = await upstream(t, (req, res) => {
    arrived();
    setTimeout(() => res.end('slow done\n'), 1500);
  });
  const d = await new Daemon(t).start({
    body: proxyAll(up.url),
  });
  const port = await d.port();
  const pending = request(port, '/slow');
  await seen;
  d.signal('SIGQUIT');
  const r = await pending;
  t.equal(r.status, 200);
  t.equal(r.body, 'slow done\n');
  t.equal(r.headers.connection, 'close', 'a draining worker answers with Connection: close');
  t.equal(await d.waitForExit(), 0);
  t.notOk(fs.existsSync(d.pidFile), 'pid file removed');
});

t.test('TERM stops at once and removes the pid file', async (t) => {
  const d = await new Daemon(t).start({ body: RETURN_ONLY, workers: 2 });
  const workers = await waitFor('workers', 10_000, () => { const w = d.workerPids(); return w.length === 2 ? w : undefined; });
  d.signal('SIGTERM');
  t.equal(await d.waitForExit(10_000), 0);
  t.notOk(fs.existsSync(d.pidFile));
  await waitFor('workers gone', 5000, () => (!workers.some(alive) ? true : undefined));
});

t.test('USR1 reopens the access log: after logrotate renames it, new lines go to a new file', async (t) => {
  const d = await new Daemon(t).start({ body: RETURN_ONLY, workers: 2 });
  const port = await d.port();
  await request(port, '/?before');
  await waitFor('first access line', 5000, () => (d.readLog(d.accessLog).includes('before') ? true : undefined));
  fs.renameSync(d.accessLog, d.accessLog + '.1');
  fs.renameSync(d.errorLog, d.errorLog + '.1');
  d.signal('SIGUSR1');
  await waitFor('error log reopened', 5000, () => (fs.existsSync(d.errorLog) ? true : undefined)).catch(() => undefined);
  await sleep(300);
  for (let i = 0; i < 4; i++) await request(port, '/?after');
  await waitFor('a new access log with the new lines', 5000, () => (d.readLog(d.accessLog).includes('after') ? true : undefined));
  t.notMatch(d.readLog(d.accessLog + '.1'), /after/, 'the rotated file got no new lines');
  t.match(d.readLog(d.accessLog + '.1'), /before/);
});
