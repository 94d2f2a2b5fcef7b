/** @module Log sinks that fail: a full device and a file that cannot be opened, then can. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { MAX_BUFFERED, openSink, reopenSink } from '../../../lib/log/destination.js';

const tick = () => new Promise((r) => setTimeout(r, 20));

t.test('a full device is reported once, buffers at most MAX_BUFFERED, and never hangs flushSync', async (t) => {
  const errors: string[] = [];
  const sink = openSink({ kind: 'file', path: '/dev/full' }, { onError: (e) => errors.push((e as Error & { code?: string }).code ?? e.message) });
  const log = pino({ base: null }, sink);
  const line = 'x'.repeat(1000);
  for (let round = 0; round < 25; round++) {
    for (let i = 0; i < 1000; i++) log.info({ line });
    await tick();
  }
  t.same(errors, ['ENOSPC'], 'one report for 25000 failed lines');
  t.ok((sink as unknown as { _len: number })._len <= MAX_BUFFERED, 'the buffer is bounded');
  // SonicBoom alone retries ENOSPC forever: a hang here fails the test by its timeout, not by a stopwatch.
  sink.flushSync();
  t.pass('flushSync returns');
  sink.destroy();
});

t.test('a file that cannot be opened keeps its lines until it can, then writes them and says so', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-sink-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const blocker = path.join(dir, 'logs');
  fs.writeFileSync(blocker, 'not a directory');
  const file = path.join(blocker, 'access.log');
  const errors: string[] = [];
  const recovered: number[] = [];
  const dest = { kind: 'file' as const, path: file };
  const sink = openSink(dest, { onError: (e) => errors.push(e.message), onRecover: (n) => recovered.push(n) });
  t.teardown(() => sink.destroy());
  const log = pino({ base: null }, sink);
  await tick();
  for (let i = 0; i < 50; i++) t.doesNotThrow(() => log.info({ i }), 'logging never throws', { diagnostic: false });
  await tick();
  t.equal(errors.length, 1, `reported once: ${errors.join(' | ')}`);
  fs.rmSync(blocker);
  reopenSink(dest, sink); // USR1; without it the retry timer does the same within 5 s
  for (let i = 0; i < 100 && !(fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"i":49')); i++) await tick();
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 50, 'every buffered line was written');
  t.same(recovered, [0], 'the recovery is reported, nothing dropped');
});
