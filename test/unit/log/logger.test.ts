/** @module The logs of one process: no access log in the master, closing what a reload replaced, settling before exit. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createLogs } from '../../../lib/log/logger.js';
import { moveMasterSettings } from '../../../lib/master/settings.js';
import { masterConfig } from '../master/fixture.js';

const fds = () => fs.readdirSync('/proc/self/fd').length;

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-logs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the master never opens the access log; a worker does', async (t) => {
  const dir = tmp(t);
  const config = { level: 'info' as const, error: { kind: 'file' as const, path: path.join(dir, 'error.log') }, access: { kind: 'file' as const, path: path.join(dir, 'access.log') }, queryStrings: true };
  const master = createLogs(config, { role: 'master' });
  await master.settle(2000);
  t.equal(master.access, null);
  t.notOk(fs.existsSync(path.join(dir, 'access.log')), 'no access.log opened by the master');
  master.close();
  const worker = createLogs(config, { role: 'worker', generation: 1 });
  await worker.settle(2000);
  t.ok(worker.access);
  t.ok(fs.existsSync(path.join(dir, 'access.log')));
  worker.close();
});

t.test('logs that are closed give their descriptors back, and a stale logger drops lines instead of throwing', async (t) => {
  const dir = tmp(t);
  const before = fds();
  for (let i = 0; i < 10; i++) {
    const logs = createLogs({ level: 'info', error: { kind: 'file', path: path.join(dir, `e${i}.log`) }, access: null, queryStrings: true }, { role: 'master' });
    logs.error.info('hello');
    await logs.settle(2000);
    logs.close();
    t.doesNotThrow(() => logs.error.error('after close'), 'a late line through an old reference', { diagnostic: false });
  }
  await t.resolves(new Promise((r) => setTimeout(r, 50)));
  const after = fds();
  t.ok(after <= before, `10 logs opened and closed: ${before} descriptors before, ${after} after`);
  t.match(fs.readFileSync(path.join(dir, 'e9.log'), 'utf8'), /hello/, 'what was logged before the close is written');
});

t.test('a line logged just before an exit is on disk once settle() resolves', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'new', 'error.log');
  const logs = createLogs({ level: 'info', error: { kind: 'file', path: file }, access: null, queryStrings: true }, { role: 'master' });
  logs.error.fatal('cannot start: the reason');
  await logs.settle(2000);
  t.match(fs.readFileSync(file, 'utf8'), /cannot start: the reason/);
  logs.close();
});

t.test('a reload that changes only the log level keeps the same logs; a new destination replaces and closes them', async (t) => {
  const dir = tmp(t);
  const a = masterConfig({ log: { level: 'info', error: { kind: 'file', path: path.join(dir, 'a.log') }, access: null, queryStrings: true } });
  const logs = createLogs(a.log, { role: 'master' });
  await logs.settle(2000);
  const before = fds();
  const world = { writePidFile: () => {}, removePidFileIfOurs: () => {} };
  const debug = { ...a, log: { ...a.log, level: 'debug' as const } };
  const same = moveMasterSettings({ previous: a, next: debug, logs, pidFile: a.pidFile, upgrading: false, world });
  t.equal(same.logs, logs, 'the same logs');
  t.equal(logs.error.level, 'debug', 'at the new level');
  t.equal(fds(), before, 'nothing opened');
  const b = { ...debug, log: { ...debug.log, error: { kind: 'file' as const, path: path.join(dir, 'b.log') } } };
  const moved = moveMasterSettings({ previous: debug, next: b, logs, pidFile: a.pidFile, upgrading: false, world });
  t.not(moved.logs, logs);
  await moved.logs.settle(2000);
  await new Promise((r) => setTimeout(r, 50));
  t.ok(fds() <= before, `one file opened, the replaced one closed (${before} descriptors before, ${fds()} after)`);
  moved.logs.close();
});
