/** @module A generation with fake worker processes: ready, replacement with backoff, spawn failures, drain, retirement. */
import pino from 'pino';
import t from 'tap';
import { Generation } from '../../../lib/master/generation.js';
import type { GenerationStatus } from '../../../lib/master/state.js';
import { fakeSpawn, masterConfig, until, type SpawnPlan } from './fixture.js';

const silent = pino({ level: 'silent' });

function generation(workers: number, plans: SpawnPlan[] = []) {
  const { spawn, children } = fakeSpawn(plans);
  let status: GenerationStatus | null = 'starting';
  const events: string[] = [];
  const gen = new Generation({
    id: 7, config: masterConfig({ workers, upgradeTimeout: 60_000, shutdownTimeout: 60_000 }), sockets: () => [], identity: {},
    log: () => silent, status: () => status, spawn,
  });
  gen.on('ready', () => events.push('ready'));
  gen.on('failed', (reason) => events.push(`failed: ${reason}`));
  gen.on('gone', () => events.push('gone'));
  const setStatus = (s: GenerationStatus | null) => { status = s; };
  t.teardown(() => gen.stop('SIGKILL'));
  return { gen, children, events, setStatus };
}

t.test('a generation is ready once every worker is, and says so once', async (t) => {
  const { gen, children, events } = generation(2);
  gen.start();
  children[0]!.ready();
  t.same(events, [], 'one of two is not enough');
  children[1]!.ready();
  t.same(events, ['ready']);
});

t.test('a worker that dies in an active generation is replaced, the others untouched', async (t) => {
  const { gen, children, setStatus } = generation(2);
  gen.start();
  children.forEach((c) => c.ready());
  setStatus('active');
  children[0]!.exit(null, 'SIGKILL');
  await until('a replacement', () => children.length === 3);
  t.equal(gen.restarts, 1);
  t.same(children[1]!.kills, [], 'the other worker was not touched');
  t.equal(gen.slots[0]!.child, children[2] as unknown, 'the replacement holds the slot');
});

t.test('a replacement whose spawn fails (ENOENT, EAGAIN) is retried with backoff instead of leaving its slot empty forever', async (t) => {
  const { gen, children, setStatus } = generation(1, ['ok', { error: 'EAGAIN' }, { error: 'ENOENT' }]);
  gen.start();
  children[0]!.ready();
  setStatus('active');
  children[0]!.exit(1);
  await until('the slot filled by a live worker after two failed spawns', () => children.length === 4);
  t.equal(gen.restarts, 3, 'each failed spawn counts as a death');
  t.equal(gen.live().length, 1);
  t.equal(gen.live()[0]!.state, 'starting', 'a real process, not a slot stuck with pid -1');
});

t.test('QUIT completes even when a spawn has failed: a failed spawn is not a live worker', async (t) => {
  const { gen, children, events, setStatus } = generation(2, ['ok', 'ok', { error: 'EMFILE' }]);
  gen.start();
  children.forEach((c) => c.ready());
  setStatus('active');
  children[0]!.exit(null, 'SIGKILL');
  await until('the failed replacement spawn', () => children.length === 3 && gen.live().length === 1);
  setStatus('draining');
  gen.drain();
  t.match(children[1]!.sent.at(-1), { type: 'drain' });
  children[1]!.exit(0);
  await until('gone', () => events.includes('gone'));
  t.same(events, ['ready', 'gone']);
});

t.test('a worker that cannot be spawned at all fails a starting generation, with the reason', async (t) => {
  const { gen, events } = generation(2, ['ok', { error: 'ENOENT' }]);
  gen.start();
  await until('failed', () => events.some((e) => e.startsWith('failed')));
  t.match(events[0], /^failed: cannot start a worker process: .*ENOENT/);
});

t.test('a spawn that throws fails a starting generation instead of leaving it starting forever', async (t) => {
  const { gen, children, events } = generation(2, [{ throws: 'EBADF' }]);
  gen.start();
  await until('failed', () => events.some((e) => e.startsWith('failed')));
  t.match(events[0], /EBADF/);
  t.same(children[0]!.kills, ['SIGKILL'], 'the worker that did start is killed');
  children[0]!.exit(null, 'SIGKILL');
  t.same(events.slice(1), ['gone']);
});

t.test('a worker that exits before it is ready fails a starting generation', async (t) => {
  const { gen, children, events } = generation(2);
  gen.start();
  children[0]!.emit('message', { type: 'fatal', message: 'cannot listen' });
  children[0]!.exit(1);
  t.same(events, ['failed: cannot listen']);
});

t.test('a draining generation drains workers that become ready late, and is gone when the last leaves', async (t) => {
  const { gen, children, events, setStatus } = generation(2);
  gen.start();
  children[0]!.ready();
  setStatus('draining');
  gen.drain();
  children[1]!.ready();
  t.match(children[1]!.sent.at(-1), { type: 'drain' }, 'drained as soon as it is ready');
  children[0]!.exit(0);
  t.same(events, []);
  children[1]!.exit(0);
  t.same(events, ['gone']);
});

t.test('a retiring worker gets its replacement at once and keeps draining; its exit then replaces nothing', async (t) => {
  const { gen, children, setStatus } = generation(1);
  gen.start();
  children[0]!.ready();
  setStatus('active');
  children[0]!.emit('message', { type: 'retiring', reason: 'uncaught exception: boom' });
  await until('the replacement', () => children.length === 2);
  t.equal(gen.live().length, 2, 'the retiring worker still drains its connections');
  t.same(children[0]!.kills, [], 'and is not killed');
  children[1]!.ready();
  children[0]!.exit(1);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(children.length, 2, 'no second replacement when the retired worker exits');
  t.equal(gen.restarts, 1);
});

t.test('a retiring worker that exits before its replacement has started leaves its generation serving, not gone', async (t) => {
  // A worker with nothing in flight leaves within milliseconds; the replacement may still be in its backoff then.
  const { gen, children, events, setStatus } = generation(1);
  gen.start();
  children[0]!.ready();
  setStatus('active');
  children[0]!.emit('message', { type: 'retiring', reason: 'unhandled rejection: boom' });
  children[0]!.exit(1);
  t.same(events, ['ready'], 'an active generation with a replacement pending is not gone');
  await until('the replacement', () => children.length === 2);
  children[1]!.ready();
  t.same(gen.live().length, 1);
  setStatus('draining');
  gen.drain();
  children[1]!.exit(0);
  t.same(events, ['ready', 'gone'], 'it is gone once drained');
});

t.test('a worker that dies while its slot is being refilled, with no other worker left, leaves the generation active', async (t) => {
  const { gen, children, events, setStatus } = generation(1);
  gen.start();
  children[0]!.ready();
  setStatus('active');
  children[0]!.exit(1);
  t.same(events, ['ready']);
  await until('the replacement', () => children.length === 2);
  t.equal(gen.restarts, 1);
});

t.test('stop signals every live worker, and a generation with none is gone at once', async (t) => {
  const { gen, children, events } = generation(2);
  gen.start();
  gen.stop('SIGTERM');
  t.same(children.map((c) => c.kills), [['SIGTERM'], ['SIGTERM']]);
  children.forEach((c) => c.exit(null, 'SIGTERM'));
  t.same(events, ['gone']);
});

t.test('a worker of a draining generation that retires is not replaced', async (t) => {
  const { gen, children, events, setStatus } = generation(1);
  gen.start();
  children[0]!.ready();
  setStatus('draining');
  gen.drain();
  children[0]!.emit('message', { type: 'retiring', reason: 'uncaught exception: boom' });
  children[0]!.exit(1);
  t.same(events, ['ready', 'gone']);
  t.equal(children.length, 1);
  t.equal(gen.restarts, 0);
});
