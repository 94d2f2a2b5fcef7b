/** @module The error table: one code → status, failover kind, passive-health mark. */
import t from 'tap';
import { classify, errorCode, knownCodes } from '../../../lib/worker/errors.js';

t.test('the error table: refused → 502 next target, timeouts → 504, client gone → 499', async (t) => {
  t.match(classify('ECONNREFUSED'), { status: 502, kind: 'connect', markDown: true });
  t.match(classify('UND_ERR_CONNECT_TIMEOUT'), { status: 504, kind: 'connect' });
  t.match(classify('UND_ERR_HEADERS_TIMEOUT'), { status: 504, kind: 'timeout' });
  t.match(classify('UND_ERR_BODY_TIMEOUT'), { status: 504 });
  t.match(classify('UND_ERR_SOCKET'), { status: 502, kind: 'reset' });
  t.match(classify('ECONNRESET'), { status: 502, kind: 'reset' });
  t.match(classify('UND_ERR_CLOSED'), { status: 502, kind: 'connect', markDown: false });
  t.match(classify('UND_ERR_ABORTED'), { status: 499, kind: 'client' });
  t.match(classify('HPE_INVALID_CHUNK_SIZE'), { status: 502, kind: 'protocol' });
  t.match(classify('UND_ERR_INVALID_ARG'), { status: 500, kind: 'internal' });
  t.match(classify('SOMETHING_NEW'), { status: 502 });
  t.ok(knownCodes().length > 20);
});

t.test('an error code is read from err.code, else err.name', async (t) => {
  t.equal(errorCode(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'ECONNRESET');
  t.equal(errorCode(new TypeError('x')), 'TypeError');
  t.equal(errorCode(null), 'UNKNOWN');
});
