/** @module The worker's side of daemon-wide rate limits, with the master's buckets behind a fake IPC. */
import type http from 'node:http';
import t from 'tap';
import { RateBuckets } from '../../../lib/master/rate-buckets.js';
import { LeaseClient, RateLimiter, type Limited } from '../../../lib/worker/rate-limit.js';
import type { WorkerToMaster } from '../../../lib/ipc/messages.js';

/** 1/m: nothing refills while a test runs. */
const conf = { rate: '1/m', perSecond: 1 / 60, burst: 9, key: 'client_ip', spec: '1/m burst 9 client_ip' };

/** A master that answers on the next turn, or not at all while `mute`. */
function master() {
  const buckets = new RateBuckets();
  const sent: WorkerToMaster[] = [];
  const state = { mute: false };
  const client = new LeaseClient((msg) => {
    sent.push(msg);
    if (msg.type === 'rate-lease' && !state.mute) setImmediate(() => client.receive(msg.seq, buckets.lease(msg.asks)));
    return true;
  });
  return { client, sent, state };
}

function request(client = '10.0.0.1', headers: http.IncomingHttpHeaders = {}) {
  const out = { outcome: '' as '' | 'proceed' | 'limited', retryAfter: 0 };
  const r: Limited = {
    client,
    req: { headers } as http.IncomingMessage,
    routeIndex: 0,
    proceed: () => { out.outcome = 'proceed'; },
    limited: (s) => { out.outcome = 'limited'; out.retryAfter = s; },
    clientLeft: () => false,
  };
  return { r, out };
}

/** Until every request given is decided (the fake master answers on a later turn). */
async function decided(...outs: { outcome: string }[]): Promise<void> {
  for (let i = 0; i < 500 && outs.some((o) => o.outcome === ''); i++) await new Promise((r) => setTimeout(r, 10));
}
const settle = () => new Promise((r) => setTimeout(r, 20));

t.test('the first request of a key waits for a lease; the next ones spend it locally, without asking each time', async (t) => {
  const { client, sent } = master();
  const limiter = new RateLimiter('*/api', conf, 2, client);
  const first = request();
  limiter.admit(first.r);
  t.equal(first.out.outcome, '', 'waits for the master');
  await decided(first.out);
  t.equal(first.out.outcome, 'proceed');
  const asksBefore = sent.length;
  const next = request();
  limiter.admit(next.r);
  t.equal(next.out.outcome, 'proceed', 'decided at once, from the lease');
  t.ok(sent.length <= asksBefore + 1, 'at most a prefetch ask');
});

t.test('once the bucket is spent, requests are refused locally with Retry-After until it refills', async (t) => {
  const { client, sent } = master();
  const limiter = new RateLimiter('*/api', conf, 1, client);
  const results: string[] = [];
  for (let i = 0; i < 14; i++) {
    const q = request();
    limiter.admit(q.r);
    await decided(q.out);
    results.push(q.out.outcome);
  }
  t.equal(results.filter((o) => o === 'proceed').length, 10, 'burst + 1 allowed');
  const asks = sent.length;
  const later = request();
  limiter.admit(later.r);
  t.same([later.out.outcome, later.out.retryAfter], ['limited', 60], 'refused at once, Retry-After: the next token (1/m)');
  t.equal(sent.length, asks, 'without asking the master');
});

t.test('requests waiting together share one ask; those the grant does not cover are refused', async (t) => {
  const { client, sent } = master();
  const limiter = new RateLimiter('*/api', { ...conf, burst: 2 }, 1, client);
  const qs = Array.from({ length: 5 }, () => request());
  for (const q of qs) limiter.admit(q.r);
  await decided(...qs.map((q) => q.out));
  t.same(qs.map((q) => q.out.outcome), ['proceed', 'proceed', 'proceed', 'limited', 'limited']);
  t.ok(sent.length <= 2, `${sent.length} asks for 5 requests`);
});

t.test('header keys: one bucket per value, and no header means no limit', async (t) => {
  const { client } = master();
  const limiter = new RateLimiter('*/api', { ...conf, burst: 0, key: 'header:x-api-key' }, 1, client);
  const run = async (headers: http.IncomingHttpHeaders) => {
    const q = request('10.0.0.1', headers);
    limiter.admit(q.r);
    await decided(q.out);
    return q.out.outcome;
  };
  t.same([await run({ 'x-api-key': 'a' }), await run({ 'x-api-key': 'a' }), await run({ 'x-api-key': 'b' }), await run({}), await run({})], ['proceed', 'limited', 'proceed', 'proceed', 'proceed']);
});

t.test('a master that does not answer: the worker decides from its share of the limit and owes what it spent', async (t) => {
  const { client, sent, state } = master();
  state.mute = true;
  const limiter = new RateLimiter('*/api', conf, 2, client);
  const qs = Array.from({ length: 8 }, () => request());
  for (const q of qs) limiter.admit(q.r);
  await decided(...qs.map((q) => q.out));
  t.same(qs.map((q) => q.out.outcome).filter((o) => o === 'proceed').length, 5, 'half the bucket (2 workers): 5 of 8');
  t.ok(qs.every((q) => q.out.outcome !== ''), 'none waits forever');
  const extra = request();
  limiter.admit(extra.r);
  t.equal(extra.out.outcome, 'limited', 'while the master is silent, decided at once');
  await settle();
  const last = sent.at(-1) as Extract<WorkerToMaster, { type: 'rate-lease' }>;
  t.ok(last.asks.some((a) => a[5] < 0), 'the next ask carries the debt');
});
