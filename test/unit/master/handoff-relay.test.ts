/**
 * @module The master's hand-off relay with fakes at the process boundary: workers are objects that record what
 * they are sent and can close their channel; descriptors are objects that record their close.
 */
import { EventEmitter } from 'node:events';
import t from 'tap';
import type { HandoffMessage, HandoffOffer } from '../../../lib/ipc/messages.js';
import { HandoffRelay, receiversFor, type Candidate, type HandoffEndpoint } from '../../../lib/master/handoff-relay.js';
import type { WorkerHandle } from '../../../lib/master/worker-handle.js';
import { masterConfig } from './fixture.js';

class FakeDescriptor {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

class FakeWorker {
  readonly child = new EventEmitter();
  readonly got: Array<{ msg: HandoffMessage; handle: unknown }> = [];
  failSends = false;
  /** Sends not yet acknowledged (a busy receiver): their callbacks, called by the test. */
  holdSends = false;
  readonly held: Array<() => void> = [];
  constructor(readonly pid: number, public state: 'starting' | 'ready' | 'draining' | 'exited' = 'ready') {}
  sendHandoff(msg: HandoffMessage, handle: unknown, cb: (err: Error | null) => void): void {
    if (this.failSends) return cb(new Error('EPIPE'));
    this.got.push({ msg, handle });
    if (this.holdSends) this.held.push(() => cb(null));
    else cb(null);
  }
  /** Its IPC channel closes (the process died). */
  disconnect(): void {
    this.child.emit('disconnect');
  }
}

class FakePeer implements HandoffEndpoint {
  readonly name = 'peer';
  readonly master = true;
  readonly got: Array<{ msg: HandoffMessage; handle: unknown }> = [];
  send(msg: HandoffMessage, handle: unknown, cb: (err: Error | null) => void): void {
    this.got.push({ msg, handle });
    cb(null);
  }
}

const TCP = masterConfig();
const TLS = masterConfig({ listeners: [{ ...TCP.listeners[0]!, h2c: false, tls: { certFile: '', keyFile: '', cert: '', key: '', sni: [] } }] });
const KEY = TCP.listeners[0]!.address.key;

function offer(id: string, part = 0, parts = 1): HandoffOffer {
  return { type: 'handoff', id, kind: parts === 1 ? 'http1' : 'websocket', listener: KEY, part, parts };
}

function setup(candidates: Candidate[], peer: HandoffEndpoint | null = null) {
  const relay = new HandoffRelay({ candidates: () => candidates, peer: () => peer });
  const sender = new FakeWorker(100, 'draining');
  const from = relay.worker(sender as unknown as WorkerHandle);
  return { relay, sender, from };
}

const gen = (id: number, config = TCP, ...workers: FakeWorker[]): Candidate => ({ id, config, workers: workers as unknown as WorkerHandle[] });
const results = (w: FakeWorker) => w.got.filter((g) => g.msg.type === 'handoff-result').map((g) => g.msg);

t.test('an offer goes to a ready worker of the newest active generation; this copy is closed once passed on; the answer goes back', async (t) => {
  const [a, b, starting] = [new FakeWorker(1), new FakeWorker(2), new FakeWorker(3, 'starting')];
  const older = new FakeWorker(9);
  const { relay, sender, from } = setup([gen(3, TCP, a, starting, b), gen(2, TCP, older)]);
  const d1 = new FakeDescriptor();
  relay.receive(from, offer('100:1'), d1);
  const d2 = new FakeDescriptor();
  relay.receive(from, offer('100:2'), d2);
  t.same([a.got.length, b.got.length, starting.got.length, older.got.length], [1, 1, 0, 0], 'in turn among the ready workers of generation 3');
  t.equal(a.got[0]!.handle, d1, 'the descriptor travels with its message');
  t.ok(d1.closed && d2.closed, "the master's copies are closed once passed on");
  relay.receive(relay.worker(a as unknown as WorkerHandle), { type: 'handoff-result', id: '100:1', outcome: 'taken' }, undefined);
  t.same(results(sender), [{ type: 'handoff-result', id: '100:1', outcome: 'taken' }], 'the answer reaches the sender');
  relay.receive(relay.worker(a as unknown as WorkerHandle), { type: 'handoff-result', id: '100:2', outcome: 'taken' }, undefined);
  t.equal(results(sender).length, 1, 'an answer from a worker the offer did not go to is ignored');
  t.equal(relay.pending, 1);
});

t.test('nobody to take it: a listener gone or now TLS in the new config, or no ready worker: failed (no_receiver), never passed on', async (t) => {
  for (const [what, candidates] of [
    ['no listener', [gen(2, masterConfig({ listeners: [] }), new FakeWorker(1))]],
    ['TLS now', [gen(2, TLS, new FakeWorker(1))]],
    ['no ready worker', [gen(2, TCP, new FakeWorker(1, 'starting'), null as unknown as FakeWorker)]],
    ['no active generation', []],
  ] as const) {
    const { relay, sender, from } = setup(candidates as unknown as Candidate[]);
    const d = new FakeDescriptor();
    relay.receive(from, offer('100:1'), d);
    t.same(results(sender), [{ type: 'handoff-result', id: '100:1', outcome: 'failed', reason: 'no_receiver' }], what);
    t.ok(d.closed, `${what}: the master's copy closed`);
    t.equal(relay.pending, 0);
  }
});

t.test('a worker never gets its own connection back (a retiring worker of the active generation)', async (t) => {
  const relay = new HandoffRelay({ candidates: () => [gen(2, TCP, self, other)], peer: () => null });
  const self = new FakeWorker(1);
  const other = new FakeWorker(2);
  relay.receive(relay.worker(self as unknown as WorkerHandle), offer('1:1'), new FakeDescriptor());
  relay.receive(relay.worker(self as unknown as WorkerHandle), offer('1:2'), new FakeDescriptor());
  t.same([self.got.filter((g) => g.msg.type === 'handoff').length, other.got.length], [0, 2]);
  t.same(receiversFor([gen(2, TCP, self)], KEY, self as unknown as WorkerHandle), []);
});

t.test('with no worker of its own to take it, an offer goes to the other master; one from the other master never goes back', async (t) => {
  const peer = new FakePeer();
  const { relay, from } = setup([], peer);
  relay.receive(from, offer('100:1'), new FakeDescriptor());
  t.equal(peer.got.length, 1, 'a worker\'s offer goes to the other master');
  const back = new FakePeer();
  relay.receive(back, offer('7:1'), new FakeDescriptor());
  t.same(back.got.map((g) => g.msg), [{ type: 'handoff-result', id: '7:1', outcome: 'failed', reason: 'no_receiver' }], 'the other master\'s offer is refused, not returned');
  t.equal(peer.got.length, 1);
});

t.test('a receiver whose channel closes before it answered never read the connection: failed (receiver_gone); another master: unknown', async (t) => {
  const r = new FakeWorker(1);
  const { relay, sender, from } = setup([gen(2, TCP, r)]);
  relay.receive(from, offer('100:1'), new FakeDescriptor());
  r.disconnect();
  t.same(results(sender), [{ type: 'handoff-result', id: '100:1', outcome: 'failed', reason: 'receiver_gone' }]);

  const peer = new FakePeer();
  const viaPeer = setup([], peer);
  viaPeer.relay.receive(viaPeer.from, offer('100:2'), new FakeDescriptor());
  viaPeer.relay.gone(peer);
  t.same(results(viaPeer.sender), [{ type: 'handoff-result', id: '100:2', outcome: 'unknown', reason: 'unknown' }], 'its worker may have taken it');
});

t.test("a tunnel's two parts go to the same receiver; a send that fails is failed (ipc); a sender that leaves is forgotten", async (t) => {
  const [a, b] = [new FakeWorker(1), new FakeWorker(2)];
  const { relay, sender, from } = setup([gen(2, TCP, a, b)]);
  relay.receive(from, offer('100:1', 0, 2), new FakeDescriptor());
  relay.receive(from, offer('100:1', 1, 2), new FakeDescriptor());
  t.same([a.got.length, b.got.length], [2, 0], 'both parts to one worker');
  b.failSends = true;
  a.failSends = true;
  relay.receive(from, offer('100:2'), new FakeDescriptor());
  t.same(results(sender).map((m) => m.type === 'handoff-result' && m.outcome !== 'taken' && m.reason), ['ipc']);
  relay.gone(from);
  t.equal(relay.pending, 0, 'nothing kept for a sender that is gone');
});

t.test('a draining generation is told whether anyone can take its connections', async (t) => {
  const r = new FakeWorker(1);
  t.equal(setup([gen(2, TCP, r)]).relay.canReceive(1), true, 'another active generation with a ready worker');
  t.equal(setup([gen(2, TCP, r)]).relay.canReceive(2), false, 'not its own');
  t.equal(setup([]).relay.canReceive(1), false, 'nobody (QUIT)');
  t.equal(setup([], new FakePeer()).relay.canReceive(1), true, 'the other master of an upgrade');
});

t.test('an offer goes to the ready worker with the fewest descriptors still waiting to reach it', async (t) => {
  const [slow, quick] = [new FakeWorker(1), new FakeWorker(2)];
  const { relay, from } = setup([gen(2, TCP, slow, quick)]);
  slow.holdSends = true;
  for (let i = 1; i <= 6; i++) relay.receive(from, offer(`100:${i}`), new FakeDescriptor());
  // The slow one took the first offer and has not acknowledged it: every later one goes to the other.
  t.same([slow.got.length, quick.got.length], [1, 5], 'the worker that has not read its descriptor gets no more');
  slow.held.splice(0).forEach((ack) => ack());
  slow.holdSends = false;
  for (let i = 7; i <= 10; i++) relay.receive(from, offer(`100:${i}`), new FakeDescriptor());
  t.same([slow.got.length, quick.got.length], [3, 7], 'in turn again once it caught up');
});
