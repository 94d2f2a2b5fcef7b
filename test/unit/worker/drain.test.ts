/**
 * @module The Drainer with fakes at the socket boundary: sockets, responses and HTTP/2 sessions are event
 * emitters that record what the Drainer does to them (end, destroy, goaway, close); the servers are real but never
 * listen. Timings are shortened through the constructor; every wait is for an event, bounded generously.
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import t from 'tap';
import { Drainer } from '../../../lib/worker/drain.js';

const FAST = { quietMs: 30, lingerMs: 60, goawayGraceMs: 20 };
const MAX_STREAM_ID = 2 ** 31 - 1;

class FakeSocket extends EventEmitter {
  destroyed = false;
  ended = false;
  readableLength = 0;
  constructor(readonly alpnProtocol: string | false = false) {
    super();
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

class FakeSession extends EventEmitter {
  closed = false;
  destroyed = false;
  goaways: [number, number][] = [];
  goaway(code: number, last: number): void {
    this.goaways.push([code, last]);
  }
  close(): void {
    this.closed = true;
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

/** Poll `check` until true; the bound only keeps a broken test from hanging. */
async function until(what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function request(d: EventEmitter, socket: FakeSocket, httpVersionMajor = 1): EventEmitter {
  const res = new EventEmitter();
  d.emit('request', { httpVersionMajor, socket }, res);
  return res;
}

function setup(tls = false) {
  const drainer = new Drainer(FAST);
  const server = new net.Server();
  const parser = new EventEmitter();
  drainer.watch(server, [parser], tls);
  let emptied = 0;
  const accept = (alpn: string | false = false) => {
    const s = new FakeSocket(alpn);
    server.emit(tls ? 'secureConnection' : 'connection', s);
    return s;
  };
  const start = () => drainer.start(() => { emptied++; });
  return { drainer, server, parser, accept, start, emptied: () => emptied };
}

t.test('connections are counted from accept to close', async (t) => {
  const { drainer, accept } = setup();
  const a = accept();
  const b = accept();
  t.equal(drainer.connections(), 2);
  a.destroy();
  t.equal(drainer.connections(), 1);
  b.destroy();
  t.equal(drainer.connections(), 0);
});

t.test('a TLS connection counts from its TCP accept: a handshake until its TLS socket is tracked', async (t) => {
  const { drainer, server, accept } = setup(true);
  const tcp = new FakeSocket();
  server.emit('connection', tcp);
  t.equal(drainer.handshakes(), 1, 'a handshake in progress');
  t.equal(drainer.connections(), 1, 'counts as a connection');
  const secure = accept();
  t.equal(drainer.handshakes(), 0, 'handshake done');
  t.equal(drainer.connections(), 1, 'still one connection, not two');
  tcp.destroy();
  secure.destroy();
  t.equal(drainer.connections(), 0);
  const failed = new FakeSocket();
  server.emit('connection', failed);
  failed.destroy();
  t.equal(drainer.connections(), 0, 'a handshake that fails leaves nothing behind');
});

t.test('a drain with no connections is over at once, and start() stops the server accepting', async (t) => {
  const { server, start, emptied, drainer } = setup();
  const closed = new Promise<void>((r) => server.once('close', () => r()));
  start();
  t.equal(emptied(), 1);
  t.equal(drainer.draining, true);
  await closed;
  t.pass('the server was closed');
  start();
  t.equal(emptied(), 1, 'a second start does nothing');
});

t.test('an idle keep-alive connection is closed with a FIN after the quiet period, destroyed after the linger', async (t) => {
  const { accept, start, emptied } = setup();
  const s = accept();
  start();
  t.equal(s.ended, false, 'not at once');
  await until('the FIN', () => s.ended);
  t.equal(s.destroyed, false, 'the peer gets time to close its side');
  await until('the socket to be destroyed', () => s.destroyed);
  t.equal(emptied(), 1, 'the drain is over when it closed');
});

t.test('a connection with a request in flight stays until its response is done, then idles out', async (t) => {
  const { accept, parser, start, emptied, drainer } = setup();
  const s = accept();
  const res = request(parser, s);
  t.equal(drainer.requests, 1);
  start();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(s.ended, false, 'not closed under its request');
  res.emit('close');
  await until('the FIN after the response', () => s.ended);
  s.destroy();
  t.equal(emptied(), 1);
});

t.test('bytes of a next request waiting on an idle connection delay its close until they are served', async (t) => {
  const { accept, parser, start } = setup();
  const s = accept();
  s.readableLength = 40;
  start();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(s.ended, false, 'not closed with unread bytes (that would be a reset)');
  s.readableLength = 0;
  const res = request(parser, s);
  res.emit('close');
  await until('the FIN once served', () => s.ended);
});

t.test('upgraded and HTTP/2 connections are never idle-closed; they leave by themselves or at closeAll', async (t) => {
  const { accept, start, drainer, emptied } = setup();
  const ws = accept();
  drainer.markUpgraded(ws as unknown as net.Socket);
  const h2c = accept();
  drainer.markH2(h2c as unknown as net.Socket, true);
  const h1 = accept();
  drainer.markH2(h1 as unknown as net.Socket, false);
  start();
  await until('the HTTP/1.1 one to be closed', () => h1.ended);
  h1.destroy();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.same([ws.ended, h2c.ended], [false, false], 'the tunnel and the HTTP/2 connection are left alone');
  t.equal(emptied(), 0);
  drainer.closeAll();
  t.same([ws.destroyed, h2c.destroyed], [true, true], 'closeAll destroys them');
  t.equal(emptied(), 1);
});

t.test('a TLS connection negotiated to h2 is owned by its session from the start', async (t) => {
  const { accept, start } = setup(true);
  const s = accept('h2');
  start();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(s.ended, false);
  s.destroy();
});

t.test('a draining worker waits for TLS handshakes in progress; one that completes is then served and idles out', async (t) => {
  const { server, accept, start, emptied, drainer } = setup(true);
  const tcp = new FakeSocket();
  server.emit('connection', tcp);
  start();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(emptied(), 0, 'the handshake keeps the worker');
  t.equal(tcp.ended, false, 'and is not cut');
  const secure = accept();
  await until('the new connection to idle out', () => secure.ended);
  secure.destroy();
  tcp.destroy();
  t.equal(drainer.connections(), 0);
  t.equal(emptied(), 1);
});

t.test('every HTTP/2 session gets GOAWAY(2^31-1), then the final GOAWAY (close) a grace period later', async (t) => {
  const { parser, start, drainer } = setup();
  const before = new FakeSession();
  parser.emit('session', before);
  t.equal(drainer.sessions(), 1);
  start();
  t.same(before.goaways, [[http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID]], 'the shutdown notice');
  t.equal(before.closed, false, 'not closed at once');
  await until('the final GOAWAY', () => before.closed);
  const during = new FakeSession();
  parser.emit('session', during);
  t.same(during.goaways, [[http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID]], 'a session that starts during the drain gets it too');
  await until('its final GOAWAY', () => during.closed);
  before.destroy();
  during.destroy();
  t.equal(drainer.sessions(), 0);
});

t.test('HTTP/2 requests are counted but do not hold their connection (the session does)', async (t) => {
  const { accept, parser, drainer } = setup();
  const s = accept();
  drainer.markH2(s as unknown as net.Socket, true);
  request(parser, s, 2);
  t.equal(drainer.requests, 1);
  s.destroy();
  t.equal(drainer.connections(), 0);
});

t.test('closeAll destroys sessions, connections and handshakes in progress', async (t) => {
  const { server, accept, parser, drainer } = setup(true);
  const tcp = new FakeSocket();
  server.emit('connection', tcp);
  const s = accept();
  const session = new FakeSession();
  parser.emit('session', session);
  drainer.closeAll();
  t.same([tcp.destroyed, s.destroyed, session.destroyed], [true, true, true]);
  t.equal(drainer.connections(), 0);
});

for (const event of ['checkContinue', 'checkExpectation'] as const) {
  t.test(`a request that arrived through '${event}' (no 'request' event) holds its connection through a drain until its response is done`, async (t) => {
    const { accept, parser, start, emptied, drainer } = setup();
    const s = accept();
    const res = new EventEmitter();
    parser.emit(event, { httpVersionMajor: 1, socket: s }, res);
    t.equal(drainer.requests, 1, 'counted as a request');
    start();
    // A lower bound: the quiet period passed several times over and the connection is still open.
    await new Promise((r) => setTimeout(r, FAST.quietMs * 5));
    t.equal(s.ended, false, 'not idle-closed under its request');
    res.emit('close');
    await until('the FIN after the response', () => s.ended);
    s.destroy();
    t.equal(emptied(), 1);
  });
}

t.test("a connection taken over by CONNECT ('connect' event) is never idle-closed, like an upgraded one", async (t) => {
  const { accept, parser, start, drainer } = setup();
  const s = accept();
  parser.emit('connect', { httpVersionMajor: 1, socket: s }, s, Buffer.alloc(0));
  const u = accept();
  parser.emit('upgrade', { httpVersionMajor: 1, socket: u }, u, Buffer.alloc(0));
  start();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 5));
  t.same([s.ended, u.ended], [false, false], 'left alone');
  drainer.closeAll();
});

/** A Mover that records what it is offered and answers as the test says. */
class FakeMover {
  readonly offered: FakeSocket[] = [];
  readonly answers: Array<(r: 'moved' | 'busy' | 'failed') => void> = [];
  move(socket: FakeSocket): Promise<'moved' | 'busy' | 'failed'> {
    this.offered.push(socket);
    return new Promise((resolve) => this.answers.push(resolve));
  }
}

/** `setup()` with a FakeMover in use. */
function setupWithMover() {
  const s = setup();
  const mover = new FakeMover();
  s.drainer.useMover(mover as never);
  return { ...s, mover };
}

t.test('with a mover, a connection idle at drain start is offered instead of closed', async (t) => {
  const { accept, start, emptied, mover } = setupWithMover();
  const s = accept();
  start();
  t.equal(mover.offered.length, 1, 'offered at once');
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(s.ended, false, 'not idle-closed while offered');
  mover.answers[0]!('moved');
  s.destroy(); // what the mover does with this process's copy once it moved
  t.equal(emptied(), 1, 'the drain is over when it left');
});

t.test('a connection adopted during a drain (an HTTP/2 session taken from the HTTP/1.1 server) is neither offered nor idle-closed, and the drain waits for it', async (t) => {
  const { drainer, server, accept, start, emptied, mover } = setupWithMover();
  const held = accept();
  start();
  t.equal(mover.offered.length, 1, 'the idle HTTP/1.1 connection is offered');
  const taken = new FakeSocket();
  drainer.adopt(taken as never, server);
  t.equal(mover.offered.length, 1, 'the adopted one is not');
  mover.answers[0]!('moved');
  held.destroy();
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(taken.ended, false, 'not idle-closed');
  t.equal(emptied(), 0, 'the drain waits for it');
  taken.destroy();
  t.equal(emptied(), 1, 'and is over once it closed');
});

t.test('a connection handed in by another worker counts as handed in until its first request here', async (t) => {
  const { drainer, server, parser } = setup();
  const s = Object.assign(new FakeSocket(), { timeout: -1, setTimeout(ms: number) { this.timeout = ms; } });
  server.emit('connection', s);
  t.equal(drainer.handedIn(s as never), false, 'accepted here: not handed in');
  drainer.markHandedIn(s as never, 1000);
  t.equal(drainer.handedIn(s as never), true);
  request(parser, s).emit('close');
  t.equal(drainer.handedIn(s as never), false, 'no longer once it served a request here');
  s.destroy();
});

t.test('an offer that fails leaves the connection to drain here (closed once quiet); one busy with a request is offered again after it', async (t) => {
  const { parser, accept, start, mover } = setupWithMover();
  const failing = accept();
  const busy = accept();
  start();
  t.equal(mover.offered.length, 2);
  mover.answers[0]!('failed');
  await until('the failed one closed with a FIN', () => failing.ended);
  // A request arrived before its turn: served here, then offered again when its response is done.
  const res = request(parser, busy);
  mover.answers[1]!('busy');
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  t.equal(mover.offered.length, 2, 'not while its request runs');
  res.emit('close');
  t.equal(mover.offered.length, 3, 'offered again once idle');
  t.equal(busy.ended, false);
  failing.destroy();
  busy.destroy();
});

t.test('a connection whose offer failed late gets a whole quiet period before its FIN (a request held in the kernel meanwhile is read first)', async (t) => {
  const { accept, start, mover } = setupWithMover();
  const s = accept();
  start();
  // Quiet since long before the answer: the old quiet period is over by then.
  await new Promise((r) => setTimeout(r, FAST.quietMs * 3));
  mover.answers[0]!('failed');
  await new Promise((r) => setTimeout(r, FAST.quietMs / 3));
  t.equal(s.ended, false, 'not closed as soon as the offer failed (a lower bound: the quiet period restarted)');
  await until('closed with a FIN once quiet', () => s.ended);
  s.destroy();
});
