/**
 * @module The worker's two sides of a hand-off with fakes at the IPC boundary: what the sender decides when the
 * channel fails, answers or falls silent; when the receiver refuses. Real sockets and descriptors are covered by
 * test/integration/handoff*.test.ts.
 */
import net from 'node:net';
import t from 'tap';
import type { HandoffOffer, HandoffResult } from '../../../lib/ipc/messages.js';
import { HandoffSender, idleHttp1, WINDOW, type Channel } from '../../../lib/worker/handoff.js';
import { HandoffReceiver, type ReceiverHost } from '../../../lib/worker/handoff-in.js';

class FakeChannel implements Channel {
  connected = true;
  failWrites = false;
  readonly sent: Array<{ msg: HandoffOffer; handle: unknown }> = [];
  send(msg: HandoffOffer, handle: unknown, cb: (err: Error | null) => void): void {
    if (this.failWrites) return queueMicrotask(() => cb(new Error('EPIPE')));
    this.sent.push({ msg, handle });
    queueMicrotask(() => cb(null));
  }
}

/** A connected pair of loopback sockets (the server's side first). */
async function pair(t: Tap): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const s = await accepted;
  t.teardown(() => { s.destroy(); client.destroy(); server.close(); });
  return [s, client];
}
type Tap = { teardown(fn: () => unknown): void };

t.test('an offer sends each socket with its descriptor; the first answer counts', async (t) => {
  const ch = new FakeChannel();
  const sender = new HandoffSender(ch);
  const [a, b] = await pair(t);
  const pending = sender.offer('websocket', '127.0.0.1:80', [a, b], {
    client: '127.0.0.1', host: 'x', path: '/ws', requestId: 'r', route: '*/', upstream: 'app', target: '127.0.0.1:1', startedAt: 0, bytes: 0,
  });
  t.same(ch.sent.map((s) => [s.msg.part, s.msg.parts, s.msg.tunnel !== undefined]), [[0, 2, false], [1, 2, true]], 'two parts, the tunnel state with the last');
  t.ok(ch.sent.every((s) => s.handle !== null && typeof (s.handle as { fd: number }).fd === 'number'), 'each with its handle');
  const id = ch.sent[0]!.msg.id;
  sender.settle({ type: 'handoff-result', id, outcome: 'taken' });
  sender.settle({ type: 'handoff-result', id, outcome: 'failed', reason: 'refused' });
  t.same(await pending, { type: 'handoff-result', id, outcome: 'taken' });
  t.same(sender.tally, { moved: { http1: 0, websocket: 1 }, stayed: {} });
});

t.test('a message that could not be written is a failure (the connection stays); a channel that closes leaves every offer unknown', async (t) => {
  const ch = new FakeChannel();
  const sender = new HandoffSender(ch);
  const [a] = await pair(t);
  ch.failWrites = true;
  t.match(await sender.offer('http1', 'k', [a]), { outcome: 'failed', reason: 'ipc' });
  ch.failWrites = false;
  const waiting = sender.offer('http1', 'k', [a]);
  sender.disconnected();
  t.match(await waiting, { outcome: 'unknown', reason: 'unknown' }, 'someone may have it: never served here again');
  ch.connected = false;
  t.match(await sender.offer('http1', 'k', [a]), { outcome: 'failed', reason: 'ipc' }, 'no channel: nothing sent');
  t.same(sender.tally.stayed, { ipc: 2, unknown: 1 });
});

t.test('a socket is idle for a hand-off only with nothing of a request in this process', async (t) => {
  const [s, client] = await pair(t);
  t.equal(idleHttp1(s), true, 'nothing read at all');
  client.write('GET / HTTP/1.1\r\n');
  await new Promise((r) => s.once('readable', r));
  t.equal(idleHttp1(s), false, 'bytes read and not parsed as a finished request (no parser here: never idle)');
  s.destroy();
  t.equal(idleHttp1(s), false, 'destroyed');
});

function host(over: Partial<ReceiverHost> = {}): ReceiverHost & { replies: HandoffResult[] } {
  const replies: HandoffResult[] = [];
  return {
    replies,
    server: () => null,
    draining: () => false,
    reply: (msg, cb) => { replies.push(msg); cb(null); },
    handedIn: () => { throw new Error('not expected'); },
    adoptTunnel: () => { throw new Error('not expected'); },
    ...over,
  };
}

class FakeRaw {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

const offer = (over: Partial<HandoffOffer> = {}): HandoffOffer => ({ type: 'handoff', id: '9:1', kind: 'http1', listener: '127.0.0.1:80', part: 0, parts: 1, ...over });

t.test('a receiver refuses, closing its copies unread, when it drains, lacks the listener, or gets a message without its descriptor', async (t) => {
  const server = new net.Server();
  for (const [what, h] of [
    ['draining', host({ server: () => server, draining: () => true })],
    ['no such cleartext listener', host()],
  ] as const) {
    const raw = new FakeRaw();
    new HandoffReceiver(h).take(offer(), raw);
    t.same(h.replies, [{ type: 'handoff-result', id: '9:1', outcome: 'failed', reason: 'refused' }], what);
    t.equal(raw.closed, true, `${what}: its copy closed`);
  }
  const h = host({ server: () => server });
  new HandoffReceiver(h).take(offer(), undefined);
  t.same(h.replies, [{ type: 'handoff-result', id: '9:1', outcome: 'failed', reason: 'ipc' }]);
});

t.test('a receiver waits for every part of a tunnel before it answers', async (t) => {
  const h = host({ draining: () => true });
  const r = new HandoffReceiver(h);
  const parts = [new FakeRaw(), new FakeRaw()];
  r.take(offer({ kind: 'websocket', parts: 2, part: 0 }), parts[0]);
  t.same(h.replies, [], 'no answer for half a tunnel');
  r.take(offer({ kind: 'websocket', parts: 2, part: 1 }), parts[1]);
  t.same(h.replies.map((x) => x.outcome), ['failed'], 'one answer for the whole');
  t.same(parts.map((p) => p.closed), [true, true]);
});

t.test(`at most ${WINDOW} hand-offs of a worker are under way at once; the next waits for a place, first come first served`, async (t) => {
  const sender = new HandoffSender(new FakeChannel());
  const held = await Promise.all(Array.from({ length: WINDOW }, () => sender.turn()));
  const order: number[] = [];
  const later = [1, 2].map((n) => sender.turn().then((done) => { order.push(n); return done; }));
  await new Promise((r) => setImmediate(r));
  t.same(order, [], 'the window is full: nobody else goes');
  held[0]!();
  held[0]!(); // giving a place back twice frees one place only
  await new Promise((r) => setImmediate(r));
  t.same(order, [1], 'one place freed: the first waiting goes, and only it');
  held[1]!();
  const [d1, d2] = await Promise.all(later);
  t.same(order, [1, 2]);
  for (const done of [...held.slice(2), d1!, d2!]) done();
  const again = await Promise.all(Array.from({ length: WINDOW }, () => sender.turn()));
  t.equal(again.length, WINDOW, 'every place came back');
});
