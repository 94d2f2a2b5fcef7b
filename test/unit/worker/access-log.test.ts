/** @module The access-log line: valid JSON with the documented fields, whatever a client puts in its strings. */
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { flushLines } from '../../../lib/log/logger.js';
import { decimal3, logAccess, ms, type AccessRecord } from '../../../lib/worker/access-log.js';

function capture(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      cb();
    },
  });
  // Access lines reach the sink at the end of the event-loop turn: reading them flushes first.
  return {
    log: pino({ base: null }, sink),
    get lines() {
      flushLines();
      return lines;
    },
  };
}

const base: AccessRecord = {
  client: '127.0.0.1', method: 'GET', host: 'a.test', path: '/x?y=1', status: 200, bytes: 12, duration: 1.5,
  upstream: 'app', target: '127.0.0.1:9001', upstream_time: 0.75, request_id: 'abc-1', protocol: 'HTTP/1.1',
};

t.test('an access line is one JSON object with the fields in the documented order', async (t) => {
  const cap = capture();
  const { log } = cap;
  logAccess(log, base);
  t.equal(cap.lines.length, 1);
  const parsed = JSON.parse(cap.lines[0]!) as Record<string, unknown>;
  t.same(Object.keys(parsed), ['time', 'client', 'method', 'host', 'path', 'status', 'bytes', 'duration', 'upstream', 'target', 'upstream_time', 'request_id', 'protocol']);
  t.match(parsed, { ...base, time: /^\d{4}-\d\d-\d\dT/ });
  logAccess(log, { ...base, upstream: null, target: null, upstream_time: null });
  t.match(JSON.parse(cap.lines[1]!), { upstream: null, target: null, upstream_time: null });
});

t.test('strings that need escaping stay intact: quotes, backslashes, control characters, non-ASCII, lone surrogates', async (t) => {
  const cap = capture();
  const { log } = cap;
  const nasty = ['/a"b', '/a\\b', '/a\nb\r\t\x00\x1f', '/é✓', '/\ud800x', '"}{"injected":1'];
  for (const path of nasty) logAccess(log, { ...base, path, method: path, host: path, request_id: path, upstream: path });
  t.equal(cap.lines.length, nasty.length, 'one line each: nothing a client sends can add a line');
  cap.lines.forEach((line, i) => {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    const want = nasty[i]!.replace('\ud800', '\ufffd');
    for (const field of ['path', 'method', 'host', 'request_id', 'upstream']) {
      t.equal(String(parsed[field]).replace('\ud800', '\ufffd'), want, `${field} of ${JSON.stringify(nasty[i])}`);
    }
    t.notOk('injected' in parsed, 'no field injected');
  });
});

t.test('the path logged can differ from the record (query strings left out)', async (t) => {
  const cap = capture();
  const { log } = cap;
  logAccess(log, base, '/x');
  t.equal((JSON.parse(cap.lines[0]!) as { path: string }).path, '/x');
});

t.test('durations are written exactly as JavaScript writes the 3-decimal figure, from integers', async (t) => {
  const cases = [0, 0.001, 0.01, 0.1, 0.087, 0.5, 1, 1.5, 1.05, 1.005, 12, 99.999, 100.1, 1234.56, 60000, 86_399_999.999];
  // Random spans as the exchange measures them (performance.now() readings), over every scale a request has.
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 5000; i++) {
    const from = next() * 1e6;
    cases.push(ms(from, from + next() * 10 ** Math.floor(next() * 8 - 2)));
  }
  const wrong = cases.filter((v) => decimal3(v) !== String(v));
  t.same(wrong.slice(0, 5).map((v) => [v, decimal3(v)]), [], `${cases.length} figures written as String() writes them`);
  // Outside the integer path (negative, huge, not a number), String() itself.
  for (const v of [-1.5, 2e12, Number.NaN]) t.equal(decimal3(v), String(v), `${v}`);
  const cap = capture();
  logAccess(cap.log, { ...base, duration: 0.087, upstream_time: 12 });
  const line = cap.lines.at(-1)!;
  t.match(line, /"duration":0\.087,/, 'the line has the figure as written');
  t.match(line, /"upstream_time":12,/, 'an integer figure has no decimals');
});
