/**
 * The request side of HTTP/2 against the real daemon, with hand-made frames: streams reset as soon as they are
 * opened (the rapid-reset attack, CVE-2023-44487) cost nothing upstream and no log line each; methods are
 * forwarded exactly as sent when they are valid tokens, and refused when they are not.
 */
import net from 'node:net';
import t from 'tap';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';
import { Daemon, proxyAll, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { FRAME, frame, h2raw, literalHeaders, type Frame } from '../helpers/h2-raw.js';

const END_STREAM_AND_HEADERS = 0x5;
const CANCEL = Buffer.from([0, 0, 0, 8]);

function request(method: string, path: string): Buffer {
  return literalHeaders([[':method', method], [':scheme', 'http'], [':path', path], [':authority', 'h2.test']]);
}

/** A raw HTTP/2 connection: its socket and the frames it received so far. */
async function h2connect(t: Tap, port: number): Promise<{ socket: net.Socket; frames: Frame[] }> {
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => { socket.destroy(); });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const frames: Frame[] = [];
  h2raw(socket, (f) => frames.push(f));
  return { socket, frames };
}

type Tap = { teardown(fn: () => unknown): void };

/** The `:status` of the response on `stream`, from a HEADERS frame encoded by nghttp2 (indexed :status only). */
function statusOf(frames: readonly Frame[], stream: number): number | undefined {
  const f = frames.find((x) => x.type === FRAME.HEADERS && x.stream === stream);
  if (f === undefined) return undefined;
  // Static table: 8 = 200, 9 = 204, 10 = 206, 11 = 304, 12 = 400, 13 = 404, 14 = 500 (RFC 7541 Appendix A).
  const table: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
  const first = f.payload[0]!;
  if (table[first] !== undefined) return table[first];
  // Literal with an indexed name (:status, index 8): the value follows as a 3-byte string.
  return Number(f.payload.subarray(f.payload.length - 3).toString('latin1'));
}

t.test('streams reset as soon as they are opened (rapid reset) open nothing upstream and are summed up in the logs', async (t) => {
  const seen: string[] = [];
  let connections = 0;
  const up = await upstream(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end('ok\n');
  });
  up.server.on('connection', () => { connections++; });
  const d = await new Daemon(t).start({ body: proxyAll(up.url, '  - listen: 127.0.0.1:0\n    h2c: true') });
  const port = await d.port();

  const CONNECTIONS = 3;
  const STREAMS = 10;
  for (let c = 0; c < CONNECTIONS; c++) {
    const { socket } = await h2connect(t, port);
    const bytes: Buffer[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const id = 1 + 2 * i;
      bytes.push(frame(FRAME.HEADERS, END_STREAM_AND_HEADERS, id, request('GET', `/reset/${c}/${i}`)), frame(FRAME.RST_STREAM, 0, id, CANCEL));
    }
    socket.write(Buffer.concat(bytes));
  }
  const abandoned = () => d.lines().filter((l) => String(l.msg).startsWith('requests abandoned by their clients')).reduce((n, l) => n + Number(l.count), 0);
  await waitFor('a summary line counting every reset stream', 30_000, () => (abandoned() >= CONNECTIONS * STREAMS ? true : undefined));
  t.equal(abandoned(), CONNECTIONS * STREAMS, 'every reset stream is counted once in the summary');
  t.same(seen, [], 'none of them reached the upstream');
  t.equal(connections, 0, 'no upstream connection was opened for them');
  t.notOk(d.lines().some((l) => JSON.stringify(l).includes('/reset/')), 'no error-log line of their own');
  t.notOk(d.lines(d.accessLog).some((l) => String(l.path).startsWith('/reset/')), 'no access-log line of their own');
  const counted = await waitFor('the resets in /metrics as 4xx (499)', 30_000, async () => {
    const text = await (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
    const n = sampleValue(parseExposition(text).samples, 'baton_requests_total', { route: '(none)', upstream: '(none)', status_class: '4xx' }) ?? 0;
    return n >= CONNECTIONS * STREAMS ? n : undefined;
  });
  t.equal(counted, CONNECTIONS * STREAMS, 'counted as 499 in /metrics');

  const { socket, frames } = await h2connect(t, port);
  socket.write(frame(FRAME.HEADERS, END_STREAM_AND_HEADERS, 1, request('GET', '/after')));
  await waitFor('the answer to a normal stream', 30_000, () => statusOf(frames, 1));
  t.equal(statusOf(frames, 1), 200, 'a stream that is not reset is served');
  t.same(seen, ['GET /after']);
});

t.test('an HTTP/2 method is forwarded exactly as sent, lower case included, and refused when it is not a token', async (t) => {
  const lines: string[] = [];
  const raw = net.createServer((s) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      lines.push(head.slice(0, head.indexOf('\r\n')));
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n');
    });
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  t.teardown(() => raw.close());
  const d = await new Daemon(t).start({ body: proxyAll(`http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`, '  - listen: 127.0.0.1:0\n    h2c: true') });
  const port = await d.port();
  const { socket, frames } = await h2connect(t, port);
  socket.write(frame(FRAME.HEADERS, END_STREAM_AND_HEADERS, 1, request('get', '/lower')));
  socket.write(frame(FRAME.HEADERS, END_STREAM_AND_HEADERS, 3, request('PURGE', '/custom')));
  await waitFor('both answers', 30_000, () => (statusOf(frames, 1) !== undefined && statusOf(frames, 3) !== undefined ? true : undefined));
  t.same(lines.sort(), ['PURGE /custom HTTP/1.1', 'get /lower HTTP/1.1'], 'the upstream got both methods as sent');

  socket.write(frame(FRAME.HEADERS, END_STREAM_AND_HEADERS, 5, request('GE(T', '/paren')));
  await waitFor('an answer or a reset for a method that is not a token', 30_000, () =>
    frames.find((f) => f.stream === 5 && (f.type === FRAME.HEADERS || f.type === FRAME.RST_STREAM)));
  const answer = frames.find((f) => f.stream === 5 && (f.type === FRAME.HEADERS || f.type === FRAME.RST_STREAM))!;
  t.ok(answer.type === FRAME.RST_STREAM || statusOf(frames, 5) === 400, 'refused (a 400, or a reset from the HTTP/2 layer)');
  t.notOk(lines.some((l) => l.includes('/paren')), 'never forwarded');
});
