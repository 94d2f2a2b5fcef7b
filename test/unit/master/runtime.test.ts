/**
 * @module The master's runtime with fakes at the process and socket boundary: worker and new-master processes the
 * test drives, listening handles without sockets, pid files, systemd and exit recorded. Effects that fail must
 * reach the reducer as events.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { isNewMasterToOld } from '../../../lib/ipc/messages.js';
import type { ChildProcess } from 'node:child_process';
import type { Config } from '../../../lib/config/types.js';
import { createLogs } from '../../../lib/log/logger.js';
import { ListenerRegistry } from '../../../lib/master/listeners.js';
import { MasterRuntime, type MasterBoundary } from '../../../lib/master/runtime.js';
import { initialState } from '../../../lib/master/state.js';
import { FakeChild, FakeHandle, fakeSpawn, masterConfig, until, type SpawnPlan } from './fixture.js';

interface Harness {
  runtime: MasterRuntime;
  workers: FakeChild[];
  masters: FakeChild[];
  world: { exits: number[]; stderr: string[]; notes: Record<string, string>[]; restored: number; pidWrites: string[]; told: unknown[] };
  logFile: string;
  log(): string;
}

function start(t: Test, opts: { config?: Partial<Config>; plans?: SpawnPlan[]; world?: Partial<MasterBoundary>; bind?: ConstructorParameters<typeof ListenerRegistry>[0]; reloadTo?: Config } = {}): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-runtime-'));
  const logFile = path.join(dir, 'error.log');
  const config = masterConfig({ workers: 1, pidFile: path.join(dir, 'baton.pid'), log: { level: 'info', error: { kind: 'file', path: logFile }, access: null, queryStrings: true }, ...opts.config });
  const { spawn, children: workers } = fakeSpawn(opts.plans);
  const masters: FakeChild[] = [];
  const world: Harness['world'] = { exits: [], stderr: [], notes: [], restored: 0, pidWrites: [], told: [] };
  let fd = 100;
  const registry = new ListenerRegistry(opts.bind ?? ((host, port) => new FakeHandle(fd++, host ?? '127.0.0.1', port || 40_000 + fd)));
  const logs = createLogs(config.log, { role: 'master' });
  t.teardown(async () => {
    await logs.settle(1000);
    logs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const runtime = new MasterRuntime(initialState(config, { oldMasterAlive: false }), {
    configFile: '/tmp/baton.yaml', logs, registry, oldMaster: null, startedAt: Date.now(),
    world: {
      spawnWorker: spawn,
      spawnNewMaster: (_listeners, _first, onMessage) => {
        const child = new FakeChild([], {});
        child.on('message', (m: unknown) => { if (isNewMasterToOld(m)) onMessage(m); });
        masters.push(child);
        return child as unknown as ChildProcess;
      },
      tellOldMaster: (msg) => world.told.push(msg),
      writePidFile: (p) => { world.pidWrites.push(p); fs.writeFileSync(p, `${process.pid}\n`); },
      restorePidFile: (p) => {
        world.restored++;
        try { fs.renameSync(`${p}.oldbin`, p); } catch { /* nothing renamed */ }
        return true;
      },
      notify: async (fields) => { world.notes.push(fields); },
      loadConfig: () => ({ ok: true, config: opts.reloadTo ?? config }),
      stderr: (line) => world.stderr.push(line),
      exit: (code) => world.exits.push(code),
      ...opts.world,
    },
  });
  t.teardown(() => { for (const c of workers) if (c.exitCode === null && c.signalCode === null) c.exit(null, 'SIGKILL'); });
  return { runtime, workers, masters, world, logFile, log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '') };
}

async function serving(h: Harness): Promise<void> {
  await until('a worker', () => h.workers.length > 0);
  h.workers[0]!.ready();
  await until('running', () => h.runtime.state.phase === 'running');
}

t.test('a pid file that cannot be written at start: exit 4 naming the path and errno, no READY, nothing served', async (t) => {
  const h = start(t, {
    world: { writePidFile: () => { throw Object.assign(new Error("EACCES: permission denied, open '/ro/baton.pid'"), { code: 'EACCES' }); } },
  });
  await until('a worker', () => h.workers.length === 1);
  h.workers[0]!.ready();
  await until('the worker told to drain', () => h.workers[0]!.sent.some((m) => (m as { type: string }).type === 'drain'));
  h.workers[0]!.exit(0);
  await until('exit', () => h.world.exits.length > 0);
  t.same(h.world.exits, [4]);
  t.match(h.world.stderr.join('\n'), /cannot start: cannot write the pid file .*baton\.pid: EACCES/);
  t.notOk(h.world.notes.some((n) => n.READY === '1'), 'systemd never heard READY');
  t.match(h.log(), /cannot write the pid file .*EACCES/, 'the error log has it too, written before the exit');
});

t.test('a throw while a reload starts its generation fails that reload with a reply; the next reload still runs', async (t) => {
  const config = masterConfig({ workers: 1 });
  const moved = { ...config, listeners: [{ address: { key: '127.0.0.1:9999', host: '127.0.0.1', port: 9999, family: 4 as const }, h2c: false, tls: null, proxyProtocol: false, mode: null, owner: null }] };
  let fd = 200;
  const h = start(t, {
    reloadTo: moved,
    bind: (host, port) => {
      if (port === 9999) throw new Error('the socket layer threw');
      return new FakeHandle(fd++, host ?? '127.0.0.1', port ?? 0);
    },
  });
  await serving(h);
  const first = await h.runtime.reload();
  t.same(first.ok, false);
  t.match(first, { errors: [/cannot start generation 2: the socket layer threw/] });
  t.equal(h.runtime.state.reload, null, 'no reload left starting');
  t.match(await h.runtime.reload(), { ok: false, errors: [/cannot start generation 3/] }, 'a later reload runs (and is answered) instead of queueing behind a stuck one');
});

t.test('a worker whose spawn fails is replaced, and QUIT then completes', async (t) => {
  const h = start(t, { plans: ['ok', { error: 'EAGAIN' }] });
  await serving(h);
  h.workers[0]!.exit(null, 'SIGKILL');
  await until('the failed spawn and the next one', () => h.workers.length === 3);
  h.runtime.enqueue({ type: 'quit' });
  await until('the live worker told to drain', () => h.workers[2]!.sent.some((m) => (m as { type: string }).type === 'drain'));
  h.workers[2]!.exit(0);
  await until('exit', () => h.world.exits.length > 0);
  t.same(h.world.exits, [0]);
});

t.test('an upgrade: the new master gets the admin listener only once it is ready; a late spawn error restores nothing', async (t) => {
  const h = start(t);
  await serving(h);
  fs.writeFileSync(h.runtime.state.config.pidFile, `${process.pid}\n`);
  h.runtime.enqueue({ type: 'upgrade' });
  await until('a new master', () => h.masters.length === 1);
  const child = h.masters[0]!;
  t.ok(fs.existsSync(`${h.runtime.state.config.pidFile}.oldbin`), 'pid file renamed to .oldbin');
  child.emit('spawn');
  t.same(child.sent, [], 'no hand-over before ready');
  h.runtime.enqueue({ type: 'newMasterReady', pid: child.pid! });
  await until('the hand-over', () => child.sent.length === 1);
  t.same(child.sent, [{ type: 'admin-handover' }]);
  child.emit('error', new Error('channel closed'));
  await new Promise((r) => setImmediate(r));
  t.equal(h.world.restored, 0, 'an error from a live new master does not restore the pid file');
  t.equal(h.runtime.state.upgrade?.stage, 'ready');
  child.exit(0);
  await until('rollback', () => h.runtime.state.upgrade === null);
  t.equal(h.world.restored, 1, 'its exit does');
});

t.test('a new master that reports why it fails: the reason is logged and kept for /status', async (t) => {
  const h = start(t);
  await serving(h);
  fs.writeFileSync(h.runtime.state.config.pidFile, `${process.pid}\n`);
  h.runtime.enqueue({ type: 'upgrade' });
  await until('a new master', () => h.masters.length === 1);
  const child = h.masters[0]!;
  child.emit('spawn');
  child.emit('message', { type: 'upgrade-failed', pid: child.pid, reason: 'Error: boom\n    at start (main.js:1:1)' });
  child.exit(4);
  await until('rollback', () => h.runtime.state.upgrade === null);
  const s = h.runtime.status().body;
  t.match(s.lastUpgradeFailure, { reason: 'Error: boom\n    at start (main.js:1:1)', at: String });
  await until('the reason in the error log', () => h.log().includes('the new master cannot start: Error: boom'));
  t.pass('logged');
});

t.test('/status answers 503 until a worker is ready, and 200 while one is', async (t) => {
  const h = start(t);
  t.equal(h.runtime.status().code, 503, 'starting');
  await serving(h);
  t.equal(h.runtime.status().code, 200);
  t.match(h.runtime.status().body, { serving: true, workers: [{ state: 'ready', rss: null }] });
  h.runtime.enqueue({ type: 'winch' });
  t.equal(h.runtime.status().code, 503, 'drained by WINCH: nothing serves');
});

t.test('a new master whose spawn throws: the upgrade fails, the pid file is restored, and a later USR2 is not refused', async (t) => {
  let attempts = 0;
  const h = start(t, { world: { spawnNewMaster: () => { attempts++; throw Object.assign(new Error('spawn EBADF'), { code: 'EBADF' }); } } });
  await serving(h);
  fs.writeFileSync(h.runtime.state.config.pidFile, `${process.pid}\n`);
  h.runtime.enqueue({ type: 'upgrade' });
  await until('the upgrade over', () => h.runtime.state.upgrade === null);
  t.equal(h.world.restored, 1, 'the pid file is restored');
  t.match(h.runtime.status().body.lastUpgradeFailure, { reason: 'spawn EBADF' });
  h.runtime.enqueue({ type: 'upgrade' });
  await until('a second attempt', () => attempts === 2);
  t.pass('the next USR2 tried again');
});
