/** @module One worker process, with a fake spawn: its states, its messages, and spawns that fail. */
import t from 'tap';
import { WorkerHandle, workerFlags, type WorkerSpec } from '../../../lib/master/worker-handle.js';
import type { WorkerToMaster } from '../../../lib/ipc/messages.js';
import { fakeSpawn, masterConfig, until, type SpawnPlan } from './fixture.js';

function handle(plans: SpawnPlan[] = []) {
  const { spawn, children } = fakeSpawn(plans);
  const messages: WorkerToMaster[] = [];
  const exits: WorkerHandle[] = [];
  const spec: WorkerSpec = { slot: 0, generation: 1, config: masterConfig(), listeners: [], identity: {}, spawn };
  const w = new WorkerHandle(spec, (_w, msg) => messages.push(msg), (x) => exits.push(x));
  return { w, children, messages, exits };
}

t.test('a worker gets its config snapshot, becomes ready, drains on request and ends with its exit', async (t) => {
  const { w, children, exits } = handle();
  const child = children[0]!;
  t.match(child.sent[0], { type: 'start', generation: 1, config: { workers: 2 } });
  t.ok(child.args.includes('--no-warnings'), "Node's raw warning printer is off: the worker logs warnings as JSON");
  t.same(child.args.slice(0, -1), workerFlags(), "Node's options for a worker (workerFlags), then the worker's entry file");
  t.equal(w.state, 'starting');
  child.ready();
  t.equal(w.state, 'ready');
  t.equal(w.wasReady, true);
  w.drain();
  t.equal(w.state, 'draining');
  t.match(child.sent.at(-1), { type: 'drain' });
  child.exit(0);
  t.equal(w.state, 'exited');
  t.same(exits, [w]);
  t.equal(w.describeExit(), 'code 0');
  w.drain();
  w.kill('SIGKILL');
  t.same(child.kills, [], 'nothing is sent to a process that has gone');
});

t.test('a spawn that fails with an error event (ENOENT, EAGAIN) and no exit ends the handle like an exit', async (t) => {
  for (const code of ['ENOENT', 'EACCES', 'EAGAIN', 'EMFILE']) {
    const { w, exits } = handle([{ error: code }]);
    await until(`${code} reported`, () => exits.length > 0);
    t.equal(w.state, 'exited', code);
    t.equal(w.pid, -1);
    t.match(w.fatal, new RegExp(`cannot start a worker process: .*${code}`));
    t.match(w.describeExit(), /spawn failed/);
    t.equal(exits.length, 1, `${code}: once, though 'close' follows`);
  }
});

t.test('a spawn that throws (EBADF: a listening fd already closed) ends the handle like an exit, after the constructor', async (t) => {
  const { w, exits } = handle([{ throws: 'EBADF' }]);
  t.equal(exits.length, 0, 'not from inside the constructor');
  await until('EBADF reported', () => exits.length > 0);
  t.equal(w.state, 'exited');
  t.match(w.fatal, /EBADF/);
});

t.test('an error from a running worker (a failed IPC write) is not an exit', async (t) => {
  const { w, children, exits } = handle();
  children[0]!.emit('error', new Error('write EPIPE'));
  await new Promise((r) => setImmediate(r));
  t.equal(exits.length, 0);
  t.equal(w.state, 'starting');
});

t.test('a retiring worker is draining, with its reason, and its messages still arrive', async (t) => {
  const { w, children, messages } = handle();
  children[0]!.ready();
  children[0]!.emit('message', { type: 'retiring', reason: 'uncaught exception: boom' });
  t.equal(w.state, 'draining');
  t.equal(w.fatal, 'uncaught exception: boom');
  children[0]!.emit('message', { type: 'stats', stats: { connections: 3, requests: 9 } });
  t.equal(w.stats.connections, 3);
  t.same(messages.map((m) => m.type), ['ready', 'retiring', 'stats']);
  children[0]!.emit('message', { type: 'nonsense' });
  t.equal(messages.length, 3, 'unknown messages are ignored');
});

t.test("workers get their memory flags, each left out when the service's NODE_OPTIONS sets the same option", async (t) => {
  const always = ['--no-warnings', '--expose-gc', '--no-maglev'];
  t.same(workerFlags(undefined), [...always, '--max-semi-space-size=16', '--v8-pool-size=1']);
  t.same(workerFlags('--max-old-space-size=512 --enable-source-maps'), [...always, '--max-semi-space-size=16', '--v8-pool-size=1']);
  t.same(workerFlags('--max-semi-space-size=64'), [...always, '--v8-pool-size=1'], "the operator's young generation is left to apply");
  t.same(workerFlags('--v8-pool-size=4'), [...always, '--max-semi-space-size=16'], "the operator's thread count is left to apply");
  t.same(workerFlags('--enable-source-maps --max_semi_space_size=8 --v8_pool_size=2'), always, 'options may be spelled with underscores');
  t.same(workerFlags('--my-max-semi-space-size=8'), [...always, '--max-semi-space-size=16', '--v8-pool-size=1'], 'only the option itself counts');
});
