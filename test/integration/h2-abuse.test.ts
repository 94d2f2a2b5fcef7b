/**
 * @module HTTP/2 clients that abuse streams, against the real daemon with hand-made frames: rapid reset on one
 * connection and across reconnects (GOAWAY ENHANCE_YOUR_CALM), SETTINGS_MAX_CONCURRENT_STREAMS and the streams
 * over it (REFUSED_STREAM), and one client's share of streams across its connections. Each time another client
 * is still served, and the error log says it once per client, not once per stream.
 */
import http2 from 'node:http2';
import net from 'node:net';
import t from 'tap';
import { Daemon, proxyAll, sleep, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { FRAME, H2_ERROR, frame, h2raw, requestHeaders, rstStream, settingsOf, type Frame } from '../helpers/h2-raw.js';

const H2C = '  - listen: 127.0.0.1:0\n    h2c: true';

interface RawConn {
  socket: net.Socket;
  frames: Frame[];
  ended: boolean;
  goaway(): { last: number; code: number } | undefined;
  resetCodes(): Map<number, number>;
  /** Open stream `id` (odd, increasing) for `path`. */
  open(id: number, path: string): Buffer;
}

/** A raw HTTP/2 connection from `localAddress` (a loopback address: the daemon sees it as the client). */
function connect(port: number, localAddress: string): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const conn: RawConn = {
      socket,
      frames: [],
      ended: false,
      goaway() {
        const g = conn.frames.find((f) => f.type === FRAME.GOAWAY);
        return g && { last: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) };
      },
      resetCodes() {
        return new Map(conn.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => [f.stream, f.payload.readUInt32BE(0)]));
      },
      open(id, path) {
        return frame(FRAME.HEADERS, 0x05, id, requestHeaders('abuse.test', path));
      },
    };
    socket.setTimeout(60_000, () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => { conn.ended = true; });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      h2raw(socket, (f) => conn.frames.push(f));
      resolve(conn);
    });
  });
}

/** `n` streams from `first` on, each opened and at once cancelled: the rapid-reset pattern. */
function rapidResets(conn: RawConn, first: number, n: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(conn.open(first + 2 * i, '/'), rstStream(first + 2 * i));
  return Buffer.concat(out);
}

/** GET `path` with Node's client from `localAddress`: the status, or the error code. */
async function get(port: number, path: string, localAddress: string): Promise<number | string> {
  const client = http2.connect(`http://127.0.0.1:${port}`, { localAddress } as http2.SecureClientSessionOptions);
  client.on('error', () => {});
  try {
    return await new Promise<number | string>((resolve) => {
      const req = client.request({ ':path': path });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
      req.setTimeout(15_000, () => resolve('timeout'));
      req.resume();
    });
  } finally {
    client.destroy();
  }
}

t.test('stream resets are limited per connection and per client address', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('ok'));
  const d = await new Daemon(t).start({ body: proxyAll(up.url, H2C) });
  const port = await d.port();
  const calmLines = (client: string) => d.lines().filter((l) => l.client === client && String(l.msg).includes('ENHANCE_YOUR_CALM'));

  t.test('a connection that resets its streams gets GOAWAY ENHANCE_YOUR_CALM and is closed; others are served', async (t) => {
    const conn = await connect(port, '127.0.0.4');
    // 50 opened-and-cancelled streams per write; the limit (half of its streams, from 250 resets) is crossed
    // in the fifth write. Bounded: 20 writes at most.
    for (let i = 0; i < 20 && !conn.ended && conn.goaway() === undefined; i++) {
      conn.socket.write(rapidResets(conn, 1 + 100 * i, 50));
      await sleep(20);
    }
    await waitFor('the connection to be closed', 30_000, () => (conn.ended ? true : undefined));
    t.same(conn.goaway()?.code, H2_ERROR.ENHANCE_YOUR_CALM, 'GOAWAY with ENHANCE_YOUR_CALM');
    t.ok(conn.goaway()!.last <= 399, `the streams of the write that crossed the limit were not processed (last: ${conn.goaway()!.last})`);
    t.equal(await get(port, '/after', '127.0.0.3'), 200, 'a client on another connection is served afterwards');
    t.equal(await get(port, '/after', '127.0.0.4'), 200, 'so is a new connection from the same address that resets nothing');
    await waitFor('the log line about the client', 15_000, () => (calmLines('127.0.0.4').length > 0 ? true : undefined));
    t.equal(calmLines('127.0.0.4').length, 1, 'one log line for the connection, not one per stream');
    t.match(calmLines('127.0.0.4')[0], { level: 'warn', rule: /^connection/, connections_closed: 1 });
  });

  t.test('a client that reconnects after every burst of resets is closed too, once over its budget', async (t) => {
    let calmed = -1;
    // 100 resets per connection, under the per-connection limit; the client's budget (1000, then 33 a second)
    // runs out after about ten connections. Bounded: 40 connections.
    for (let i = 0; i < 40 && calmed < 0; i++) {
      const conn = await connect(port, '127.0.0.5');
      conn.socket.write(rapidResets(conn, 1, 50));
      await sleep(10);
      if (!conn.ended) conn.socket.write(rapidResets(conn, 101, 50));
      await sleep(50);
      if (conn.goaway()?.code === H2_ERROR.ENHANCE_YOUR_CALM) calmed = i;
      else conn.socket.end();
      await waitFor('the connection to end', 15_000, () => (conn.ended || conn.goaway() ? true : undefined));
      if (conn.goaway()?.code === H2_ERROR.ENHANCE_YOUR_CALM) calmed = i;
      conn.socket.destroy();
    }
    t.ok(calmed >= 9, `not before its budget is spent (connection ${calmed})`);
    t.ok(calmed >= 0 && calmed < 40, 'a reconnecting client is told to calm down');
    const next = await connect(port, '127.0.0.5');
    next.socket.write(rapidResets(next, 1, 5));
    await waitFor('the next resetting connection to be closed', 15_000, () => (next.ended ? true : undefined));
    t.equal(next.goaway()?.code, H2_ERROR.ENHANCE_YOUR_CALM, 'while the budget is empty, its next resetting connection is closed at once');
    t.equal(await get(port, '/after', '127.0.0.5'), 200, 'its requests that reset nothing are still served');
    t.equal(await get(port, '/after', '127.0.0.3'), 200, 'and so are other clients');
    await waitFor('the log line about the client', 15_000, () => (calmLines('127.0.0.5').length > 0 ? true : undefined));
    t.ok(calmLines('127.0.0.5').length <= 2, `at most one line per 10 s for the client (${calmLines('127.0.0.5').length})`);
    t.match(calmLines('127.0.0.5')[0], { rule: /^client/ });
  });
});

t.test('HTTP/2 streams are limited per connection (SETTINGS_MAX_CONCURRENT_STREAMS) and per client', async (t) => {
  const held: (() => void)[] = [];
  let slow = 0;
  const up = await upstream(t, (req, res) => {
    if (req.url !== '/slow') return res.end('ok');
    slow++;
    held.push(() => res.end('late'));
  });
  t.teardown(() => { for (const h of held) h(); });
  const d = await new Daemon(t).start({ top: 'limits:\n  http2_max_concurrent_streams: 4', body: proxyAll(up.url, H2C) });
  const port = await d.port();

  t.test('the limit is advertised, and streams over it are refused with REFUSED_STREAM', async (t) => {
    const conn = await connect(port, '127.0.0.6');
    // Sent before the client could acknowledge the SETTINGS: nghttp2 refuses the excess stream by stream.
    conn.socket.write(Buffer.concat([1, 3, 5, 7, 9, 11].map((id) => conn.open(id, '/slow'))));
    await waitFor('two streams refused', 15_000, () => (conn.resetCodes().size >= 2 ? true : undefined));
    const settings = conn.frames.find((f) => f.type === FRAME.SETTINGS && !(f.flags & 1));
    t.equal(settingsOf(settings!).get(3), 4, 'SETTINGS_MAX_CONCURRENT_STREAMS = 4');
    t.same([...conn.resetCodes()], [[9, H2_ERROR.REFUSED_STREAM], [11, H2_ERROR.REFUSED_STREAM]], 'the fifth and sixth streams are refused');
    await waitFor('four streams at the upstream', 15_000, () => (slow >= 4 ? true : undefined));
    t.equal(conn.ended, false, 'the connection stays open');
    t.equal(await get(port, '/fast', '127.0.0.3'), 200, 'another client is served');
    conn.socket.destroy();
  });

  t.test('one client cannot hold more than twice the limit across its connections; others are served', async (t) => {
    const conns = [];
    for (let i = 0; i < 3; i++) {
      const c = await connect(port, '127.0.0.7');
      conns.push(c);
      c.socket.write(Buffer.concat([1, 3, 5, 7].map((id) => c.open(id, '/slow'))));
      await waitFor(`the streams of connection ${i + 1}`, 15_000, () => (c.resetCodes().size > 0 || slow >= 4 * (i + 1) + 4 ? true : undefined));
    }
    const third = conns[2]!;
    await waitFor('the third connection\'s streams to be refused', 15_000, () => (third.resetCodes().size === 4 ? true : undefined));
    t.same([...third.resetCodes().values()], [7, 7, 7, 7], 'REFUSED_STREAM for every stream over the client\'s share (8)');
    t.same([conns[0]!.resetCodes().size, conns[1]!.resetCodes().size], [0, 0], 'the first eight streams are served');
    t.equal(await get(port, '/fast', '127.0.0.3'), 200, 'another client is served meanwhile');
    const refusedLines = () => d.lines().filter((l) => l.client === '127.0.0.7' && typeof l.streams_refused === 'number');
    await waitFor('a log line about the client', 15_000, () => (refusedLines().length > 0 ? true : undefined));
    t.match(refusedLines()[0], { level: 'warn', limit: 8, open_streams: 8 });
    t.ok(refusedLines().length <= 2, 'one line for the client (the rest are counted into the next one, 10 s later)');
    for (const c of conns) c.socket.destroy();
  });
});
