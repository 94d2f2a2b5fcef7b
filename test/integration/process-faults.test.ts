/**
 * Process faults against the real daemon: a worker killed under load, a new master killed during an upgrade,
 * a full or unwritable log destination, a worker out of file descriptors (uncaught errors in one request:
 * worker-faults.test.ts).
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { alive, Daemon, sleep, waitFor, proxyAll } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';

interface Outcome { start: number; end: number; ok: boolean; error?: string }

/** One request on a fresh connection; never rejects. */
function attempt(port: number, p: string, headers: http.OutgoingHttpHeaders = {}, timeout = 10_000): Promise<Outcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, headers, timeout }, (res) => {
      res.resume();
      res.on('end', () => resolve({ start, end: Date.now(), ok: res.statusCode === 200, ...(res.statusCode === 200 ? {} : { error: `status ${res.statusCode}` }) }));
      res.on('error', (e: Error & { code?: string }) => resolve({ start, end: Date.now(), ok: false, error: e.code ?? e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: Error & { code?: string }) => resolve({ start, end: Date.now(), ok: false, error: e.code ?? e.message }));
  });
}

/** `concurrency` loops of back-to-back requests until `stop()`; returns every outcome. */
function load(port: number, concurrency: number, p = '/load'): { stop: () => Promise<Outcome[]>; outcomes: () => readonly Outcome[] } {
  let running = true;
  const outcomes: Outcome[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) outcomes.push(await attempt(port, p));
  });
  return {
    outcomes: () => outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

t.test('a worker killed with SIGKILL under load costs only its in-flight requests and is replaced', async (t) => {
  const up = await upstream(t, (_req, res) => { setTimeout(() => res.end('ok'), 20); });
  const d = await new Daemon(t).start({ workers: 2, body: proxyAll(up.url) });
  const port = await d.port();
  const before = await waitFor('two ready workers', 10_000, async () => {
    const s = await d.status().catch(() => undefined);
    const ws = (s?.workers ?? []) as { pid: number; state: string }[];
    return ws.length === 2 && ws.every((w) => w.state === 'ready') ? ws.map((w) => w.pid) : undefined;
  });
  const CONCURRENCY = 8;
  const l = load(port, CONCURRENCY);
  await waitFor('20 requests served before the kill', 60_000, () => (l.outcomes().filter((o) => o.ok).length >= 20 ? true : undefined));
  const victim = before[0]!;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  // The moment the victim is seen gone (>= its real death, however loaded the machine): a request started
  // after it cannot have been accepted by the dead worker, so it must not fail.
  await waitFor('the victim to be gone', 30_000, () => (alive(victim) ? undefined : true));
  const goneAt = Date.now();
  // The replacement announces itself; how fast is the bench scripts' business, not a test's (machines are shared).
  const ready = await d.waitForLine('the replacement ready', (l) => l.msg === 'worker ready' && l.role === 'worker' && !before.includes(Number(l.pid)) && Date.parse(String(l.time)) >= killedAt - 5, 60_000);
  const readyAt = Date.parse(String(ready.time));
  // Serving carries on after the replacement: wait for 20 more good requests (bounded in time, not asserted on it).
  const served = () => l.outcomes().filter((o) => o.ok && o.start > readyAt).length;
  await waitFor('20 requests served after the replacement', 60_000, () => (served() >= 20 ? true : undefined));
  const outcomes = await l.stop();
  const failed = outcomes.filter((o) => !o.ok);
  t.comment(`${outcomes.length} requests, ${failed.length} failed (${[...new Set(failed.map((f) => f.error))].join(', ')}), replacement ready after ${readyAt - killedAt} ms`);
  t.ok(before.every((p) => p !== Number(ready.pid)), 'a new worker process took the dead one\'s place');
  t.ok(failed.length <= CONCURRENCY, `at most the requests in flight failed (${failed.length} <= ${CONCURRENCY})`);
  t.same(failed.filter((f) => f.start > goneAt), [], 'no request started after the victim was gone failed');
  t.ok(alive(before[1]!), 'the other worker was untouched');
});

t.test('a new master killed during an upgrade leaves the old one serving, before or after it is ready', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = await new Daemon(t).start({ workers: 2, body: proxyAll(up.url) });
  const port = await d.port();
  const old = d.masterPid;
  const newMaster = () => d.workerPids(old).find((p) => {
    try {
      return !fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('worker');
    } catch {
      return false;
    }
  });
  const l = load(port, 4);

  // Before it is ready: killed as soon as it exists.
  d.signal('SIGUSR2', old);
  const early = await waitFor('the new master process', 30_000, newMaster);
  process.kill(early, 'SIGKILL');
  await d.waitForLine('the old master carrying on', (l) => typeof l.msg === 'string' && l.msg.includes('new master exited before it was ready'), 30_000);
  await waitFor('the pid file back', 30_000, () => (d.pidFromFile() === old && !fs.existsSync(d.pidFile + '.oldbin') ? true : undefined));
  t.pass('killed before ready: the pid file names the old master again');

  // After it is ready: it wrote the pid file, and is killed then.
  await sleep(300);
  d.signal('SIGUSR2', old);
  const ready = await d.newMasterPid(old, 'the new master in the pid file');
  process.kill(ready, 'SIGKILL');
  await waitFor('the old master to take over again', 30_000, () => (d.pidFromFile() === old && !fs.existsSync(d.pidFile + '.oldbin') ? true : undefined));
  await sleep(500);
  const outcomes = await l.stop();
  const failed = outcomes.filter((o) => !o.ok);
  t.comment(`${outcomes.length} requests during both upgrades`);
  t.same(failed, [], 'no request failed');
  t.ok(alive(old), 'the old master is alive');
  const s = await d.status(old);
  t.equal((s.workers as unknown[]).length, 2, 'with its two workers');
  t.equal((await attempt(port, '/after')).ok, true);
});

t.test('a full log destination does not stop requests; the failure is reported once per process', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = await new Daemon(t).start({ access: '/dev/full', body: proxyAll(up.url) });
  const port = await d.port();
  for (let i = 0; i < 300; i++) t.equal((await attempt(port, `/full/${i}`)).ok, true, `request ${i}`, { diagnostic: false });
  const lines = d.stderr.split('\n').filter((l) => l.includes('access log write failed'));
  t.ok(lines.length >= 1, 'the failure is reported');
  const pids = lines.map((l) => /baton\[(\d+)\]/.exec(l)?.[1]);
  t.equal(new Set(pids).size, pids.length, `once per process: ${lines.join(' | ')}`);
  t.same(d.workerPids().length, 1, 'the worker is alive');
});

t.test('an unwritable log destination does not stop requests, and the buffered lines are written once it can be opened', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = new Daemon(t);
  const blocker = path.join(d.dir, 'blocked');
  fs.writeFileSync(blocker, 'a file where the log directory should be\n');
  await d.start({ access: 'blocked/access.log', body: proxyAll(up.url) });
  const port = await d.port();
  for (let i = 0; i < 20; i++) t.equal((await attempt(port, `/blocked/${i}`, { 'x-request-id': `blocked-${i}` })).ok, true, `request ${i}`, { diagnostic: false });
  await waitFor('the failure report', 5000, () => (d.stderr.includes('access log write failed') ? true : undefined));
  fs.rmSync(blocker);
  const file = path.join(blocker, 'access.log');
  const text = await waitFor('the access log written after the retry', 12_000, () => {
    const s = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return s.includes('blocked-19') ? s : undefined;
  });
  for (let i = 0; i < 20; i++) t.ok(text.includes(`"blocked-${i}"`), `line ${i} was kept and written`, { diagnostic: false });
  await waitFor('the recovery report', 5000, () => (d.stderr.includes('access log writes work again') ? true : undefined));
  t.pass('recovery reported');
});

t.test('a worker at its file descriptor limit closes new connections at once instead of spinning, keeps serving, and recovers', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = await new Daemon(t).start({ wrapper: ['prlimit', '--nofile=100:100'], top: 'limits: { header_timeout: 30s }', body: proxyAll(up.url) });
  const port = await d.port();
  const [worker] = d.workerPids();
  const idle: net.Socket[] = [];
  t.teardown(() => { for (const s of idle) s.destroy(); });
  let closedByServer = 0;
  for (let i = 0; i < 120; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => { closedByServer++; });
    idle.push(s);
  }
  await waitFor('the drop line', 5000, () => d.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('connection limit reached')));
  await sleep(300);
  const c0 = cpuTicks(worker!);
  await sleep(1500);
  const ticks = cpuTicks(worker!) - c0;
  t.ok(ticks < 30, `the worker does not spin (${ticks} CPU ticks in 1.5 s)`);
  t.ok(closedByServer > 0, `${closedByServer} of 120 connections were closed at once`);
  const kept = idle.find((s) => !s.destroyed && !s.readableEnded);
  t.ok(kept, 'some connections were kept');
  const answer = await new Promise<string>((resolve) => {
    let got = '';
    // Cleared once answered: a pending timer would keep this test's process alive until it fires.
    const guard = setTimeout(() => resolve(got), 30_000);
    kept!.on('data', (c: Buffer) => { got += c; if (got.includes('\r\n\r\n')) { clearTimeout(guard); resolve(got); } });
    kept!.write('GET /kept HTTP/1.1\r\nhost: x\r\n\r\n');
  });
  t.match(answer, /^HTTP\/1\.1 200/, 'a kept connection is still proxied: there were descriptors left for the upstream');
  for (const s of idle) s.destroy();
  await sleep(300);
  t.equal((await attempt(port, '/after')).ok, true, 'once connections close, new ones are served');
  t.same(d.workerPids(), [worker], 'the same worker');
});
