/** @module The retry policy's decisions, the upstream queue, and the gRPC helpers, without sockets. */
import t from 'tap';
import { DEFAULT_RETRY } from '../../../lib/config/sections/upstream-policy.js';
import type { RetryConfig } from '../../../lib/config/types.js';
import { grpcStatusOf, grpcTimeout, isGrpc } from '../../../lib/worker/grpc.js';
import { WaitQueue, type Waiter } from '../../../lib/worker/upstream/queue.js';
import { conditionOf, mayRetry, statusCondition, type AttemptFacts } from '../../../lib/worker/upstream/retry.js';

const facts = (f: Partial<AttemptFacts> = {}): AttemptFacts => ({ method: 'GET', replayable: true, hasBody: false, attempts: 1, retries: 0, elapsed: 0, ...f });

t.test('the default policy is the old rule: connect failures move on for any method, one retry after a reset for idempotent requests', async (t) => {
  const p = DEFAULT_RETRY;
  t.ok(mayRetry(p, 'connect_failure', facts({ method: 'POST', attempts: 5 })), 'connect failure, POST, 5th attempt');
  t.ok(mayRetry(p, 'reset', facts()), 'first reset of a GET');
  t.notOk(mayRetry(p, 'reset', facts({ retries: 1 })), 'a second reset');
  t.notOk(mayRetry(p, 'reset', facts({ method: 'POST' })), 'a reset of a POST');
  t.notOk(mayRetry(p, 'reset', facts({ method: 'PUT', hasBody: true })), 'a reset of a PUT with a body, even buffered');
  t.ok(mayRetry(p, 'connect_failure', facts({ method: 'PUT', hasBody: true })), 'a connect failure of a PUT with a body');
  t.notOk(mayRetry(p, 'timeout', facts()), 'timeouts are not retried');
  t.notOk(mayRetry(p, '502', facts()), 'a 502 answer is relayed');
  t.notOk(mayRetry(p, 'connect_failure', facts({ replayable: false })), 'a streamed body already read');
  t.notOk(mayRetry(p, null, facts()), 'a client failure');
});

t.test('tries, on, methods and the time budget bound a custom policy', async (t) => {
  const p: RetryConfig = { tries: 3, on: ['connect_failure', 'timeout', '503'], methods: ['GET', 'POST'], timeout: 1000, replayBodies: true };
  t.ok(mayRetry(p, 'timeout', facts({ method: 'POST', hasBody: true, attempts: 2, retries: 1 })), 'timeout, POST with a buffered body, 2 of 3 attempts made');
  t.notOk(mayRetry(p, 'timeout', facts({ attempts: 3 })), 'tries spent');
  t.notOk(mayRetry(p, 'reset', facts()), 'reset is not in on');
  t.ok(mayRetry(p, '503', facts()));
  t.notOk(mayRetry(p, '503', facts({ method: 'DELETE' })), 'DELETE is not in methods');
  t.ok(mayRetry(p, 'connect_failure', facts({ method: 'DELETE' })), 'a connect failure sent nothing: any method');
  t.notOk(mayRetry(p, 'connect_failure', facts({ elapsed: 1000 })), 'the budget is spent');
});

t.test('failure kinds and statuses map to the policy\'s conditions', async (t) => {
  t.strictSame(['connect', 'reset', 'timeout', 'protocol', 'client', 'internal'].map((k) => conditionOf(k as never)), ['connect_failure', 'reset', 'timeout', null, null, null]);
  t.strictSame([500, 502, 503, 504].map(statusCondition), [null, '502', '503', '504']);
});

function waiter(log: string[], name: string, ready: () => boolean): Waiter {
  return {
    proceed: () => {
      if (!ready()) return false;
      log.push(`${name} in`);
      return true;
    },
    expired: (ms) => log.push(`${name} expired after ${ms >= 0 ? 'a wait' : '?'}`),
  };
}

t.test('the queue is first come first served, bounded in size, and tells its depth', async (t) => {
  const depth: number[] = [];
  let d = 0;
  const q = new WaitQueue({ size: 2, timeout: 60_000 }, (delta) => depth.push((d += delta)));
  const log: string[] = [];
  let free = 0;
  const ready = () => (free > 0 ? (free--, true) : false);
  const a = waiter(log, 'a', ready);
  const b = waiter(log, 'b', ready);
  t.ok(q.add(a));
  t.ok(q.add(b));
  t.notOk(q.add(waiter(log, 'c', ready)), 'full: refused at once');
  q.wake(0);
  t.strictSame(log, [], 'no slot yet: nobody leaves');
  free = 1;
  q.wake(0);
  t.strictSame(log, ['a in'], 'one slot: the head goes');
  t.ok(q.remove(b) >= 0, 'b leaves (its client went away)');
  t.equal(q.remove(b), -1, 'not twice');
  t.equal(q.depth, 0);
  t.strictSame(depth, [1, 2, 1, 0]);
});

t.test('a waiter that finds no slot within the timeout expires', async (t) => {
  const q = new WaitQueue({ size: 5, timeout: 50 });
  const log: string[] = [];
  const done = new Promise<void>((resolve) => q.add({ proceed: () => false, expired: (ms) => { log.push(`expired ${ms > 0}`); resolve(); } }));
  await done;
  t.strictSame(log, ['expired true'], 'expired once, with the time it waited');
  t.equal(q.depth, 0);
});

t.test('gRPC calls are recognised by content-type, their deadline read from grpc-timeout', async (t) => {
  t.ok(isGrpc(['content-type', 'application/grpc']));
  t.ok(isGrpc(['Content-Type', 'application/grpc+proto']));
  t.notOk(isGrpc(['content-type', 'application/grpc-web']));
  t.notOk(isGrpc(['content-type', 'application/json']));
  t.notOk(isGrpc([]));
  t.equal(grpcTimeout(['grpc-timeout', '250m']), 250);
  t.equal(grpcTimeout(['grpc-timeout', '2S']), 2000);
  t.equal(grpcTimeout(['grpc-timeout', '1H']), 3_600_000);
  t.equal(grpcTimeout(['grpc-timeout', '100u']), 1, 'rounded up to a millisecond');
  t.equal(grpcTimeout(['grpc-timeout', '123456789S']), -1, 'at most 8 digits');
  t.equal(grpcTimeout(['grpc-timeout', 'soon']), -1);
  t.equal(grpcTimeout([]), -1);
});

t.test('baton\'s own statuses become the gRPC status a client acts on', async (t) => {
  t.strictSame([502, 503, 504, 404, 413, 500, 418].map((s) => grpcStatusOf(s)[0]), [14, 14, 4, 12, 8, 13, 2]);
});
