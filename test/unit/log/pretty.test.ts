/** @module Log lines for a person at a terminal. */
import t from 'tap';
import { prettyLine } from '../../../lib/log/pretty.js';

const plain = { colour: false };

t.test('an error-log line reads as time, level, process, message, then its fields', async (t) => {
  const line = JSON.stringify({ level: 'info', time: '2026-01-02T03:04:05.678Z', pid: 12, role: 'master', msg: 'listening', url: 'http://127.0.0.1:8080/', h2c: true }) + '\n';
  t.equal(prettyLine(line, plain), '03:04:05.678 INFO  master[12] listening url=http://127.0.0.1:8080/ h2c=true\n');
});

t.test('a worker line names its generation; an error brings its stack, indented', async (t) => {
  const line = JSON.stringify({ level: 'error', time: '2026-01-02T03:04:05.678Z', pid: 7, role: 'worker', generation: 3, msg: 'boom', err: { message: 'bad thing', stack: 'Error: bad thing\n    at f (x.js:1:1)' } }) + '\n';
  t.equal(prettyLine(line, plain), '03:04:05.678 ERROR worker[7] g3 boom err="bad thing"\n    Error: bad thing\n        at f (x.js:1:1)\n');
});

t.test('an access line reads as method, host and path, status, size, duration and upstream', async (t) => {
  const line = '{"time":"2026-01-02T03:04:05.678Z","client":"127.0.0.1","method":"GET","host":"a.test","path":"/x","status":502,"bytes":12,"duration":3,"upstream":"app 127.0.0.1:9","upstream_time":null,"request_id":"r1","protocol":"HTTP/1.1"}\n';
  t.equal(prettyLine(line, plain), '03:04:05.678 GET a.test/x 502 12 B 3 ms → app 127.0.0.1:9 HTTP/1.1 127.0.0.1 r1\n');
});

t.test('colours only when asked, and anything that is not JSON passes unchanged', async (t) => {
  const line = JSON.stringify({ level: 'warn', time: 't', pid: 1, role: 'master', msg: 'm' }) + '\n';
  t.match(prettyLine(line, { colour: true }), /\x1b\[33mWARN /);
  t.equal(prettyLine('not json\n', plain), 'not json\n');
});
