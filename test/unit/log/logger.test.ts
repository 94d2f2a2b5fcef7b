/** @module The logs of one process: no access log in the master, closing what a reload replaced, settling before exit. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { accessTime, createLogs, writeLine } from '../../../lib/log/logger.js';
import { loggerStream } from '../../../lib/util/internals.js';
import { moveMasterSettings } from '../../../lib/master/settings.js';
import { masterConfig } from '../master/fixture.js';
import { waitFor } from '../../helpers/daemon.js';

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

t.test('access lines sharing the error log\'s unbuffered sink, written in one event-loop turn, reach it as one write once the turn ends', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'both.log');
  const logs = createLogs({ level: 'info', error: { kind: 'file', path: file }, access: { kind: 'file', path: file }, queryStrings: true }, { role: 'worker', generation: 1 });
  t.teardown(() => logs.close());
  await logs.settle(2000);
  const stream = loggerStream(logs.access!);
  const writes: string[] = [];
  const write = stream.write.bind(stream);
  stream.write = (s: string) => {
    writes.push(s);
    write(s);
  };
  for (let i = 0; i < 50; i++) writeLine(logs.access!, `{"n":${i}}\n`);
  t.equal(writes.length, 0, 'nothing handed to the sink during the turn');
  await new Promise((r) => setImmediate(r));
  t.equal(writes.length, 1, 'one write for the 50 lines');
  t.equal(writes[0]!.split('\n').length - 1, 50);
  t.match(writes[0]!, /^\{"n":0\}\n\{"n":1\}\n/, 'in the order written');
});

t.test('access lines for a buffered access file wait until its minimum (32 KiB) is there, then reach the sink as one write; the flush timer writes the rest', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'access.log');
  const logs = createLogs({ level: 'info', error: { kind: 'file', path: path.join(dir, 'error.log') }, access: { kind: 'file', path: file }, queryStrings: true }, { role: 'worker', generation: 1 });
  t.teardown(() => logs.close());
  await logs.settle(2000);
  const stream = loggerStream(logs.access!);
  const min = (stream as unknown as { minLength: number }).minLength;
  t.equal(min, 32 * 1024, 'the sink holds 32 KiB');
  const writes: string[] = [];
  const write = stream.write.bind(stream);
  stream.write = (s: string) => {
    writes.push(s);
    write(s);
  };
  const line = (i: number) => `{"n":${String(i).padStart(4, '0')},"pad":"${'x'.repeat(80)}"}\n`; // 100 bytes
  const below = Math.floor(min / 100) - 1;
  for (let i = 0; i < below; i++) writeLine(logs.access!, line(i));
  await new Promise((r) => setImmediate(r));
  t.equal(writes.length, 0, `nothing handed to the sink for ${below * 100} bytes, even after the turn`);
  writeLine(logs.access!, line(below));
  writeLine(logs.access!, line(below + 1));
  t.equal(writes.length, 1, 'one write once the minimum waits');
  t.equal(writes[0]!.split('\n').length - 1, below + 2);
  t.match(writes[0]!, /^\{"n":0000,[^\n]*\n\{"n":0001,/, 'in the order written');
  writeLine(logs.access!, line(below + 2));
  const last = `"n":${String(below + 2).padStart(4, '0')}`;
  await waitFor('the line left waiting to reach the file through the flush timer', 30_000, () => fs.readFileSync(file, 'utf8').includes(last) || undefined);
  t.equal(fs.readFileSync(file, 'utf8').split('\n').length - 1, below + 3, 'every line once');
});

t.test('access lines still waiting for the end of the turn are in the file after flush(), as before an exit', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'access.log');
  const logs = createLogs({ level: 'info', error: { kind: 'file', path: path.join(dir, 'error.log') }, access: { kind: 'file', path: file }, queryStrings: true }, { role: 'worker', generation: 1 });
  t.teardown(() => logs.close());
  await logs.settle(2000);
  writeLine(logs.access!, '{"last":"line"}\n');
  logs.flush();
  t.equal(fs.readFileSync(file, 'utf8'), '{"last":"line"}\n');
});

t.test('an access line written through a closed logger is dropped at the end of the turn, without an exception', async (t) => {
  const dir = tmp(t);
  const logs = createLogs({ level: 'info', error: { kind: 'file', path: path.join(dir, 'error.log') }, access: { kind: 'file', path: path.join(dir, 'access.log') }, queryStrings: true }, { role: 'worker', generation: 1 });
  await logs.settle(2000);
  logs.close();
  await new Promise((r) => setTimeout(r, 50));
  const uncaught: Error[] = [];
  const onErr = (e: Error) => uncaught.push(e);
  process.on('uncaughtException', onErr);
  t.teardown(() => process.off('uncaughtException', onErr));
  t.doesNotThrow(() => writeLine(logs.access!, '{"late":true}\n'));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
  t.same(uncaught, [], 'no exception from the deferred write');
});

t.test('the access-log time is the ISO time of the current millisecond, across milliseconds, seconds and days', async (t) => {
  const real = Date.now;
  t.teardown(() => { Date.now = real; });
  const base = Date.UTC(2026, 11, 31, 23, 59, 58, 0);
  for (const at of [base, base, base + 1, base + 9, base + 10, base + 99, base + 100, base + 999, base + 1000, base + 1001, base + 2000, base + 2005, base - 86_400_000 + 7]) {
    Date.now = () => at;
    t.equal(accessTime(), `"time":"${new Date(at).toISOString()}"`, new Date(at).toISOString());
  }
});
