/** @module Passive health (max_fails within fail_timeout) and active health checks, on real targets in-process. */
import t from 'tap';
import { createUpstreams, markDown, markUp, setChecked, closeUpstreams, type Upstream } from '../../../lib/worker/upstream/pools.js';
import { HealthChecks } from '../../../lib/worker/upstream/health.js';
import { deadOrigin, makeConfig, memoryLogs, route, startUpstream, until, upstream, type UpstreamOptions } from './config-fixture.js';

function up(origins: string[], o: UpstreamOptions = {}): Upstream {
  const ups = createUpstreams(makeConfig([upstream('u', origins, o)], [route('/', { upstream: 'u' })]));
  t.teardown(() => closeUpstreams(ups));
  return ups.get('u')!;
}

const NOW = 1_000_000;

t.test('max_fails failures within fail_timeout take a target out for fail_timeout', async (t) => {
  const u = up(['http://127.0.0.1:1', 'http://127.0.0.1:2'], { maxFails: 3, failTimeout: 10_000 });
  const [a] = u.targets;
  t.notOk(markDown(a!, NOW), '1st failure');
  t.notOk(markDown(a!, NOW + 100), '2nd');
  t.ok(markDown(a!, NOW + 200), 'the 3rd takes it out');
  t.equal(a!.downUntil, NOW + 200 + 10_000);
  t.equal(u.balancer.pick(NOW + 300), 1, 'the balancer skips it');
  t.equal(u.balancer.pick(NOW + 10_300), 0, 'and uses it again after fail_timeout');
});

t.test('failures further apart than fail_timeout do not add up, and a response starts the count over', async (t) => {
  const u = up(['http://127.0.0.1:1', 'http://127.0.0.1:2'], { maxFails: 2, failTimeout: 1000 });
  const [a] = u.targets;
  t.notOk(markDown(a!, NOW));
  t.notOk(markDown(a!, NOW + 1500), 'the window had passed: this is a first failure again');
  markUp(a!);
  t.notOk(markDown(a!, NOW + 1600), 'a success in between: first failure again');
  t.ok(markDown(a!, NOW + 1700));
});

t.test('passive health leaves single-target upstreams alone, and max_fails 0 turns it off', async (t) => {
  const single = up(['http://127.0.0.1:1'], { maxFails: 1 });
  for (let i = 0; i < 5; i++) t.notOk(markDown(single.targets[0]!, NOW));
  t.equal(single.balancer.pick(NOW), 0);
  const off = up(['http://127.0.0.1:1', 'http://127.0.0.1:2'], { maxFails: 0 });
  for (let i = 0; i < 5; i++) t.notOk(markDown(off.targets[0]!, NOW));
});

t.test('an active-check verdict is not lifted by a passive success, only by a passing check', async (t) => {
  const u = up(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
  const [a] = u.targets;
  setChecked(a!, true);
  markUp(a!);
  t.ok(a!.downUntil > NOW * 1000, 'still out');
  t.notOk(markDown(a!, NOW), 'passive marks do not touch it');
  setChecked(a!, false);
  t.equal(a!.downUntil, 0);
  setChecked(u.targets[1]!, true);
  setChecked(a!, true);
  t.equal(u.balancer.pick(Date.now()), -1, 'every target out: -1');
});

t.test('health checks take a failing target out after `fails` checks and bring it back after `passes`', async (t) => {
  let healthy = true;
  let checks = 0;
  const good = await startUpstream(t, (req, res) => {
    if (req.url === '/health') checks++;
    res.statusCode = healthy ? 200 : 500;
    res.end();
  });
  const dead = await deadOrigin();
  const mem = memoryLogs();
  const u = up([good.origin, dead], { healthCheck: { path: '/health', interval: 50, timeout: 200, expect: [[200, 299]], fails: 2, passes: 3 } });
  const checker = new HealthChecks([u], mem.logs.error);
  t.teardown(() => checker.stop());
  t.equal(checker.size, 2);
  checker.start();
  await until(() => u.targets[1]!.checkDown, 3000, 'the refused target to be taken out');
  t.notOk(u.targets[0]!.checkDown, 'the good one stays in');
  healthy = false;
  await until(() => u.targets[0]!.checkDown, 3000, 'the failing target to be taken out');
  t.equal(u.balancer.pick(Date.now()), -1, 'both out');
  healthy = true;
  const before = checks;
  await until(() => !u.targets[0]!.checkDown, 3000, 'the target to come back');
  t.ok(checks - before >= 3, `after ${checks - before} passing checks (passes: 3)`);
  t.ok(mem.errors.some((l) => l.msg === 'health check: target taken out'));
  t.ok(mem.errors.some((l) => l.msg === 'health check: target is back'));
  checker.stop();
  const after = checks;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(checks, after, 'no check after stop()');
});

t.test('a check that gets no answer within `timeout` fails; any status outside `expect` fails', async (t) => {
  const hang = await startUpstream(t, (req, res) => { if (req.url === '/health') return; res.end(); });
  const teapot = await startUpstream(t, (_req, res) => { res.statusCode = 418; res.end(); });
  const mem = memoryLogs();
  const u = up([hang.origin, teapot.origin], { healthCheck: { path: '/health', interval: 50, timeout: 100, expect: [[200, 399]], fails: 1, passes: 1 } });
  const checker = new HealthChecks([u], mem.logs.error);
  t.teardown(() => checker.stop());
  checker.start();
  await until(() => u.targets[0]!.checkDown && u.targets[1]!.checkDown, 3000, 'both taken out');
  const results = mem.errors.filter((l) => l.msg === 'health check: target taken out').map((l) => String(l.result));
  t.ok(results.some((r) => r.includes('no answer within 100 ms')), results.join(' | '));
  t.ok(results.some((r) => r === 'status 418'));
});
