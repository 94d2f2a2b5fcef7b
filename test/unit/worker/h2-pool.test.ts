/**
 * @module H2Pool's streams once they end, against a real http2 server on 127.0.0.1: a closed stream keeps nothing
 * of the request alive (Node's young-generation collector cannot free the stream itself), and a response paused
 * and resumed many times by a slow client does not pile listeners up on its stream.
 */
import http2 from 'node:http2';
import v8 from 'node:v8';
import vm from 'node:vm';
import t, { type Test } from 'tap';
import { H2Pool } from '../../../lib/worker/upstream/h2-pool.js';
import type { TargetEndpoint } from '../../../lib/worker/upstream/connect.js';
import { listen, sleep, upstream } from './config-fixture.js';

/** An h2c server answering every GET with `chunks` DATA frames of `size` bytes. */
async function h2Server(t: Test, chunks = 1, size = 6): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    let sent = 0;
    const next = (): void => {
      while (sent < chunks) {
        sent++;
        if (sent === chunks) return void stream.end(Buffer.alloc(size, 0x61));
        if (!stream.write(Buffer.alloc(size, 0x61))) return void stream.once('drain', next);
      }
    };
    next();
  });
  return listen(t, server);
}

function makePool(t: Test, port: number): H2Pool {
  const ep: TargetEndpoint = { kind: 'tcp', host: '127.0.0.1', port, socketPath: null, tls: null };
  const pool = new H2Pool(upstream('u', [`http://127.0.0.1:${port}`], { protocol: 'http2' }), ep);
  t.teardown(() => Promise.race([pool.close().catch(() => {}), sleep(3000)]));
  return pool;
}

/** Resolves once the stream has emitted 'close' (after the exchange's own listener, which was added later). */
const closeEmitted = new WeakMap<http2.ClientHttp2Stream, Promise<void>>();

/** Every client stream the sessions of this test open, in order. */
function captureStreams(t: Test, port: number): Promise<http2.ClientHttp2Stream[]> {
  const probe = http2.connect(`http://127.0.0.1:${port}`);
  const proto = Object.getPrototypeOf(probe) as { request: (...a: unknown[]) => http2.ClientHttp2Stream };
  const original = proto.request;
  const streams: http2.ClientHttp2Stream[] = [];
  proto.request = function (this: unknown, ...a: unknown[]) {
    const s = original.apply(this, a);
    streams.push(s);
    closeEmitted.set(s, new Promise((resolve) => s.once('close', () => resolve())));
    return s;
  };
  t.teardown(() => { proto.request = original; });
  return new Promise((resolve) => probe.close(() => resolve(streams)));
}

/** A GET through the pool with `handler`; `slow` answers every chunk with "full" and resumes a turn later. */
function get(pool: H2Pool, handler: Handler): Promise<void> {
  pool.dispatch({ method: 'GET', path: '/', headers: ['host', 'example.test'], origin: 'http://example.test' }, handler as never);
  return new Promise((resolve) => { handler.done = resolve; });
}

interface Handler {
  status: number;
  bytes: number;
  error: Error | null;
  done: () => void;
  resume: () => void;
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, raw: string[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
  onBodySent(): void;
  onRequestSent(): void;
}

/** A handler that records the response; `slow` answers every chunk with "full" and resumes a turn later. */
function handler(slow = false, onChunk: () => void = () => {}): Handler {
  return {
    status: 0,
    bytes: 0,
    error: null,
    done: () => {},
    resume: () => {},
    onConnect() {},
    onHeaders(status, _raw, resume) {
      this.status = status;
      this.resume = resume;
      return true;
    },
    onData(chunk) {
      this.bytes += chunk.length;
      onChunk();
      if (!slow) return true;
      setImmediate(this.resume);
      return false;
    },
    onComplete() { this.done(); },
    onError(err) {
      this.error = err;
      this.done();
    },
    onBodySent() {},
    onRequestSent() {},
  };
}

t.test('a closed upstream stream keeps nothing of its request alive', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const port = await h2Server(t);
  const streams = await captureStreams(t, port);
  const pool = makePool(t, port);
  // The handler stands for the request's side: the attempt, the client's request and response behind it.
  const held = await (async () => {
    const h = Object.assign(handler(), { payload: Buffer.alloc(64 * 1024) });
    await get(pool, h);
    t.equal(h.error, null);
    t.equal(h.status, 200);
    t.equal(h.bytes, 6);
    return new WeakRef(h);
  })();
  t.equal(streams.length, 1, 'one stream opened');
  const stream = streams[0]!;
  await closeEmitted.get(stream);
  t.equal(stream.closed, true, 'the stream has closed');
  // The test holds the stream, as its native handle holds it in a worker until a full collection.
  // No deref() in the job that collects: a WeakRef keeps its target alive until the end of the job that read it.
  for (let i = 0; i < 5; i++) {
    await sleep(10);
    gc();
    await sleep(10);
    if (held.deref() === undefined) break;
  }
  t.equal(held.deref(), undefined, "the request's handler was collected while its stream is still reachable");
  t.equal(streams[0]!.listenerCount('timeout'), 0, 'no timeout listener left on the stream');
});

t.test('a response paused and resumed many times keeps one timeout listener and logs no warning', async (t) => {
  const port = await h2Server(t, 40, 8 * 1024);
  const streams = await captureStreams(t, port);
  const pool = makePool(t, port);
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(`${w.name}: ${w.message}`); };
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  const seen: number[] = [];
  const h = handler(true, () => seen.push(streams.at(-1)!.listenerCount('timeout')));
  await get(pool, h);
  t.equal(h.error, null);
  t.equal(h.bytes, 40 * 8 * 1024, 'the whole body arrived');
  t.ok(seen.length >= 10, `paused and resumed at least 10 times (${seen.length})`);
  // Node drops every 'timeout' listener itself once the stream has closed at the protocol level, which can be
  // before the last buffered chunk is read.
  t.equal(Math.max(...seen), 1, `never more than one timeout listener (counts seen: ${[...new Set(seen)].join(', ')})`);
  await new Promise(setImmediate); // a warning is emitted on the next tick
  t.same(warnings, [], 'no warning');
});
