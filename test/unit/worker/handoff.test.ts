/**
 * @module The worker's two sides of a hand-off with fakes at the IPC boundary: what the sender decides when the
 * channel fails, answers or falls silent; when the receiver refuses. Real sockets and descriptors are covered by
 * test/integration/handoff*.test.ts.
 */
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { KeepAlive } from '../../helpers/keepalive.js';
import type { HandoffOffer, HandoffResult } from '../../../lib/ipc/messages.js';
import { CHANNEL_DEPTH, HandoffSender, idleHttp1, WINDOW, type Channel } from '../../../lib/worker/handoff.js';
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

t.test(`at most ${CHANNEL_DEPTH} hand-offs of a worker wait in its channel and ${WINDOW} are under way; the next waits for a place, first come first served`, async (t) => {
  const sender = new HandoffSender(new FakeChannel());
  const order: number[] = [];
  const take = (n: number) => sender.turn().then((turn) => { order.push(n); return turn; });
  const first = await Promise.all(Array.from({ length: CHANNEL_DEPTH }, (_, i) => take(i)));
  const later = [take(100), take(101)];
  await new Promise((r) => setImmediate(r));
  t.same(order, Array.from({ length: CHANNEL_DEPTH }, (_, i) => i), `${CHANNEL_DEPTH} in the channel: nobody else goes`);
  first[0]!.passed();
  first[0]!.passed(); // passing twice frees one place only
  await new Promise((r) => setImmediate(r));
  t.same(order.slice(CHANNEL_DEPTH), [100], 'one place in the channel freed: the first waiting goes, and only it');
  first[1]!.done(); // done before it passed: its place in the channel comes back too
  const [a, b] = await Promise.all(later);
  t.same(order.slice(CHANNEL_DEPTH), [100, 101]);

  // Past the channel, a hand-off keeps its place in the window until its answer.
  const all = [first[0]!, first[2]!, a!, b!];
  for (const turn of all) turn.passed();
  while (order.length < WINDOW + 1) {
    const turn = await take(order.length + 1000);
    all.push(turn);
    turn.passed();
  }
  t.equal(all.length, WINDOW, `${WINDOW} under way`);
  let extra = false;
  const next = sender.turn().then((turn) => { extra = true; return turn; });
  await new Promise((r) => setImmediate(r));
  t.equal(extra, false, 'the window is full: nobody else goes, though the channel is free');
  all[0]!.done();
  all[0]!.done();
  (await next).done();
  t.equal(extra, true, 'one answer frees one place');
  for (const turn of all) turn.done();
  const again = await Promise.all(Array.from({ length: CHANNEL_DEPTH }, () => sender.turn()));
  t.equal(sender.waiting, 0, 'every place came back');
  for (const turn of again) turn.done();
});

t.test('a tunnel waiting for its turn goes before the idle HTTP/1 connections that waited longer (its client notices a pause)', async (t) => {
  const sender = new HandoffSender(new FakeChannel());
  const first = await Promise.all(Array.from({ length: CHANNEL_DEPTH }, () => sender.turn('http1')));
  const order: string[] = [];
  const waits = [
    sender.turn('http1').then((turn) => { order.push('http1 a'); return turn; }),
    sender.turn('http1').then((turn) => { order.push('http1 b'); return turn; }),
    sender.turn('websocket').then((turn) => { order.push('websocket'); return turn; }),
  ];
  for (const turn of first) turn.done();
  for (const turn of await Promise.all(waits)) turn.done();
  t.same(order, ['websocket', 'http1 a', 'http1 b']);
});

t.test('a connection held for its hand-off is not closed by its keep-alive timer while it waits for the answer', async (t) => {
  const keepAliveMs = 100;
  const server = http.createServer({ keepAliveTimeout: keepAliveMs }, (_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const c = await KeepAlive.open(t, (server.address() as net.AddressInfo).port);
  t.equal((await c.get('/')).body, 'ok');
  const socket = await accepted;
  const ch = new FakeChannel();
  const sender = new HandoffSender(ch);
  sender.listen(server, '127.0.0.1:0');
  const moving = sender.move(socket, server);
  await waitUntil(() => ch.sent.length === 1);
  // A lower bound: the keep-alive timeout passes while the offer waits for its answer (Node adds 1 s to it).
  await new Promise((r) => setTimeout(r, keepAliveMs + 2000));
  t.equal(c.closed, false, 'still open while held');
  sender.settle({ type: 'handoff-result', id: ch.sent[0]!.msg.id, outcome: 'failed', reason: 'refused' });
  t.equal(await moving, 'failed', 'it stays');
  t.equal((await c.get('/')).body, 'ok', 'and serves the next request where it is, on the same connection');
});

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 3000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('condition not met within 30 s');
}
