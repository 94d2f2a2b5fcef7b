/** @module `baton status` output and exit codes from /status answers (the JSON shapes the master serves). */
import t from 'tap';
import { formatStatus, statusOutcome, type StatusBody } from '../../../lib/cli/status.js';

const BASE: StatusBody = {
  version: '1.2.3', pid: 100, phase: 'running', generation: 2, uptime: 42,
  workers: [{ pid: 101, generation: 2, state: 'ready', connections: 3, requests: 10 }],
  listeners: [{ listen: '127.0.0.1:0', address: '127.0.0.1:41234' }],
  upgrade: null,
};

t.test('the master, its listeners and workers, one line each', async (t) => {
  t.same(formatStatus(BASE), [
    'baton 1.2.3  master 100  running  generation 2  up 42s',
    'listen   127.0.0.1:0 (127.0.0.1:41234)',
    'worker   101  gen 2  ready     3 conns  10 reqs',
  ]);
});

t.test('worker RSS, upstream target health and the last upgrade failure are printed when /status has them', async (t) => {
  const since = Date.UTC(2026, 0, 2, 3, 4, 5);
  const lines = formatStatus({
    ...BASE,
    workers: [{ ...BASE.workers[0]!, rss: 50 * 1024 * 1024 }],
    upstreams: [{
      name: 'app',
      targets: [
        { target: 'http://127.0.0.1:9001', state: 'up', since, reason: null },
        { target: 'http://127.0.0.1:9002', state: 'down', since: '2026-01-02T03:04:06.000Z', reason: 'connect ECONNREFUSED' },
      ],
    }],
    lastUpgradeFailure: { reason: 'new master exited with code 1 before it was ready', at: since },
  });
  t.match(lines, [String, String, /^worker {3}101 .* 10 reqs {2}50\.0 MiB$/]);
  t.equal(lines[3], 'upstream app  http://127.0.0.1:9001  up    since 2026-01-02T03:04:05.000Z');
  t.equal(lines[4], 'upstream app  http://127.0.0.1:9002  down  since 2026-01-02T03:04:06.000Z (connect ECONNREFUSED)');
  t.equal(lines[5], 'last upgrade failure at 2026-01-02T03:04:05.000Z: new master exited with code 1 before it was ready');
});

t.test('an upgrade in progress names both masters', async (t) => {
  t.match(formatStatus({ ...BASE, upgrade: { oldMaster: 100, newMaster: null, stage: 'starting' } })[1], 'upgrade: old master 100 → new master (starting) (starting)');
});

t.test('200 exits 0; 503 (no ready worker) prints the status and exits 6; anything else is not baton and exits 3', async (t) => {
  const ok = statusOutcome(200, JSON.stringify(BASE), 'http://127.0.0.1:9901');
  t.equal(ok.code, 0);
  t.same(ok.errors, []);
  const down = statusOutcome(503, JSON.stringify({ ...BASE, workers: [] }), 'http://127.0.0.1:9901');
  t.equal(down.code, 6);
  t.equal(down.lines[0], 'baton 1.2.3  master 100  running  generation 2  up 42s', 'what /status says is printed all the same');
  t.same(down.errors, ['baton is not serving: master 100 has no ready worker']);
  const other = statusOutcome(404, 'not found\n', 'http://127.0.0.1:9901');
  t.equal(other.code, 3);
  t.match(other.errors[0], /answered HTTP 404 without baton's status/);
  t.equal(statusOutcome(200, '{"hello": 1}', 'http://x').code, 3, 'JSON that is not a status');
});
