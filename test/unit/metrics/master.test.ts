import { EventEmitter } from 'node:events';
import t from 'tap';
import type { Config } from '../../../lib/config/types.js';
import type { Generation } from '../../../lib/master/generation.js';
import { MasterMetrics } from '../../../lib/master/metrics.js';
import { initialState, type MasterEvent, type MasterState } from '../../../lib/master/state.js';
import { reduce } from '../../../lib/master/reduce.js';
import type { WorkerHandle } from '../../../lib/master/worker-handle.js';
import { parseExposition, sampleValue } from '../../helpers/metrics-parse.js';
import { Recorder } from '../../../lib/metrics/recorder.js';

function config(): Config {
  return {
    file: '/tmp/baton.yaml', pidFile: '/tmp/x.pid', workers: 2, shutdownTimeout: 30_000, upgradeTimeout: 60_000, user: null,
    log: { level: 'info', error: { kind: 'stderr' }, access: null }, admin: null,
    listeners: [{ address: { key: '127.0.0.1:8080', host: '127.0.0.1', port: 8080, family: 4 }, h2c: false, tls: null, proxyProtocol: false, mode: null, owner: null }],
    upstreams: {}, routes: [{ host: null, path: '/', upstream: 'app', return: null }],
  } as unknown as Config;
}

/** Feed events through the reducer and every effect through MasterMetrics.observe, as the runtime does. */
function drive(events: MasterEvent[]): MasterMetrics {
  const m = new MasterMetrics();
  const first = initialState(config(), { oldMasterAlive: false });
  let state: MasterState = first.state;
  for (const effect of first.effects) m.observe(effect);
  for (const e of [{ type: 'generationReady', id: 1 } as MasterEvent, { type: 'pidFileWritten' } as MasterEvent, ...events]) {
    const step = reduce(state, e);
    state = step.state;
    for (const effect of step.effects) m.observe(effect);
  }
  return m;
}

t.test('a reload is counted once when its generation serves, however many admin requests wait for it', async (t) => {
  const m = drive([{ type: 'reload', reply: 1 }, { type: 'reload', reply: 2 }, { type: 'configLoaded', config: config() }, { type: 'generationReady', id: 2 }]);
  // The second request was queued behind the first and starts its own reload once the first ends.
  t.same(m.reloads, { ok: 1, failed: 0 });
});

t.test('a HUP reload (no admin request waiting) is counted too', async (t) => {
  t.same(drive([{ type: 'reload' }, { type: 'configLoaded', config: config() }, { type: 'generationReady', id: 2 }]).reloads, { ok: 1, failed: 0 });
});

t.test('an invalid config, a generation that cannot start and an interrupted reload count as failed', async (t) => {
  t.same(drive([{ type: 'reload' }, { type: 'configInvalid', errors: [] }]).reloads, { ok: 0, failed: 1 });
  t.same(drive([{ type: 'reload' }, { type: 'configLoaded', config: config() }, { type: 'generationFailed', id: 2, reason: 'x' }]).reloads, { ok: 0, failed: 1 });
  t.same(drive([{ type: 'reload' }, { type: 'winch' }]).reloads, { ok: 0, failed: 1 });
  t.same(drive([{ type: 'reload' }, { type: 'quit' }, { type: 'stop' }]).reloads, { ok: 0, failed: 1 });
});

t.test('the first generation becoming ready is a start, not a reload', async (t) => {
  t.same(drive([]).reloads, { ok: 0, failed: 0 });
});

t.test('upgrades count ok when the new master is ready, failed when it dies or times out first, rolled_back after', async (t) => {
  const spawned: MasterEvent[] = [{ type: 'upgrade' }, { type: 'oldbinRenamed' }, { type: 'newMasterSpawned', pid: 42 }];
  t.same(drive([...spawned, { type: 'newMasterReady', pid: 42 }]).upgrades, { ok: 1, failed: 0, rolled_back: 0 });
  t.same(drive([...spawned, { type: 'newMasterExited', pid: 42, code: 1, signal: null }]).upgrades, { ok: 0, failed: 1, rolled_back: 0 });
  t.same(drive([...spawned, { type: 'upgradeDeadline' }, { type: 'newMasterExited', pid: 42, code: null, signal: 'SIGTERM' }]).upgrades, { ok: 0, failed: 1, rolled_back: 0 });
  t.same(drive([{ type: 'upgrade' }, { type: 'oldbinRenamed' }, { type: 'newMasterSpawnFailed', reason: 'x' }]).upgrades, { ok: 0, failed: 1, rolled_back: 0 });
  t.same(drive([...spawned, { type: 'upgradeDeadline' }, { type: 'newMasterReady', pid: 42 }, { type: 'newMasterExited', pid: 42, code: null, signal: 'SIGTERM' }]).upgrades, { ok: 0, failed: 1, rolled_back: 0 }, 'a ready after the deadline is not an ok');
  t.same(drive([...spawned, { type: 'newMasterReady', pid: 42 }, { type: 'newMasterExited', pid: 42, code: 0, signal: null }]).upgrades, { ok: 1, failed: 0, rolled_back: 1 });
  t.same(drive([...spawned, { type: 'newMasterExited', pid: 7, code: 1, signal: null }]).upgrades, { ok: 0, failed: 0, rolled_back: 0 }, 'another pid: not ours');
  t.same(drive([{ type: 'newMasterReady', pid: 1 }]).upgrades, { ok: 0, failed: 0, rolled_back: 0 }, 'no upgrade in progress');
});

/** Just what MasterMetrics uses of a Generation and its WorkerHandles. */
class FakeGeneration extends EventEmitter {
  restarts = 0;
  workers: { state: string; stats: { connections: number; requests: number; metrics?: unknown } }[] = [];
  constructor(readonly id: number) {
    super();
  }
  live() {
    return this.workers.filter((w) => w.state !== 'exited');
  }
  spawn() {
    const w = { state: 'ready', stats: { connections: 0, requests: 0 } as { connections: number; requests: number; metrics?: unknown } };
    this.workers.push(w);
    return w;
  }
  push(w: this['workers'][number], r: Recorder) {
    w.stats = { connections: 0, requests: 0, metrics: JSON.parse(JSON.stringify(r.snapshot({ http1: 1, h2: 0, websocket: 0 }, false))) };
    this.emit('workerStats', w as unknown as WorkerHandle);
  }
  exit(w: this['workers'][number]) {
    w.state = 'exited';
    this.emit('workerExit', w as unknown as WorkerHandle);
  }
}

const ROUTES = [{ host: null, path: '/', upstream: 'app' }];
const OK = { route: '*/', upstream: 'app', status_class: '2xx' };

t.test('/metrics totals and restarts never go backwards when workers exit and generations leave', async (t) => {
  const m = new MasterMetrics();
  const g1 = new FakeGeneration(1);
  m.watch(g1 as unknown as Generation);
  const [a, b] = [g1.spawn(), g1.spawn()];
  const [ra, rb] = [new Recorder(ROUTES), new Recorder(ROUTES)];
  for (let i = 0; i < 3; i++) ra.request(0, 200, 1, 1);
  rb.request(0, 200, 1, 1);
  g1.push(a, ra);
  g1.push(b, rb);
  const read = () => parseExposition(m.render({ version: '1.2.3', startedAt: 1_700_000_000_000 })).samples;
  t.equal(sampleValue(read(), 'baton_requests_total', OK), 4);
  t.equal(sampleValue(read(), 'baton_connections', { protocol: 'http1', state: 'active' }), 2);
  t.equal(sampleValue(read(), 'baton_workers', { generation: '1', state: 'ready' }), 2);

  g1.exit(a); // killed; replaced
  g1.restarts = 1;
  const c = g1.spawn();
  const rc = new Recorder(ROUTES);
  rc.request(0, 200, 1, 1);
  g1.push(c, rc);
  t.equal(sampleValue(read(), 'baton_requests_total', OK), 5);
  t.equal(sampleValue(read(), 'baton_worker_restarts_total'), 1);
  t.equal(sampleValue(read(), 'baton_connections', { protocol: 'http1', state: 'active' }), 2);

  // A reload: generation 2 starts, generation 1 leaves.
  const g2 = new FakeGeneration(2);
  m.watch(g2 as unknown as Generation);
  const d = g2.spawn();
  const rd = new Recorder(ROUTES);
  rd.request(0, 200, 1, 1);
  g2.push(d, rd);
  g1.exit(b);
  g1.exit(c);
  g1.emit('gone');
  g1.emit('gone'); // twice must not count its restarts twice
  const after = read();
  t.equal(sampleValue(after, 'baton_requests_total', OK), 6);
  t.equal(sampleValue(after, 'baton_request_duration_seconds_count', { route: '*/', upstream: 'app' }), 6);
  t.equal(sampleValue(after, 'baton_upstream_latency_seconds_count', { upstream: 'app' }), 6);
  t.equal(sampleValue(after, 'baton_worker_restarts_total'), 1);
  t.equal(sampleValue(after, 'baton_workers', { generation: '1' }), undefined);
  t.equal(sampleValue(after, 'baton_connections', { protocol: 'http1', state: 'active' }), 1);
  t.equal(sampleValue(after, 'baton_connections', { protocol: 'websocket', state: 'draining' }), 0, 'every protocol × state is present');
});

t.test('/metrics renders every family once, with build info, start time, reloads and upgrades', async (t) => {
  const m = drive([{ type: 'reload' }, { type: 'configLoaded', config: config() }, { type: 'generationReady', id: 2 }]);
  const { families, samples } = parseExposition(m.render({ version: '1.2.3', startedAt: 1_700_000_000_500 }));
  t.same([...families.keys()], [
    'baton_build_info', 'baton_start_time_seconds', 'baton_workers', 'baton_requests_total', 'baton_request_duration_seconds',
    'baton_upstream_latency_seconds', 'baton_upstream_failures_total', 'baton_websocket_tunnels_total', 'baton_rate_limited_total', 'baton_connections',
    'baton_handoffs_total', 'baton_handoffs_received_total', 'baton_handoff_failures_total',
    'baton_upstream_queue_depth', 'baton_upstream_queue_total', 'baton_upstream_queue_wait_seconds',
    'baton_worker_restarts_total', 'baton_reloads_total', 'baton_upgrades_total', 'baton_upstream_target_up',
    'baton_process_resident_memory_bytes', 'baton_process_heap_used_bytes', 'baton_process_event_loop_utilization', 'baton_process_open_fds',
  ]);
  for (const f of families.values()) t.ok(f.help.length > 0, `${f.name} has a help text`);
  t.equal(sampleValue(samples, 'baton_build_info', { version: '1.2.3', node: process.version }), 1);
  t.equal(sampleValue(samples, 'baton_start_time_seconds'), 1_700_000_000);
  t.equal(sampleValue(samples, 'baton_reloads_total', { outcome: 'ok' }), 1);
  t.equal(sampleValue(samples, 'baton_reloads_total', { outcome: 'failed' }), 0);
  t.equal(sampleValue(samples, 'baton_upgrades_total', { outcome: 'rolled_back' }), 0);
  for (const kind of ['http1', 'websocket']) t.equal(sampleValue(samples, 'baton_handoffs_total', { kind }), 0, `handoffs ${kind} exists at 0`);
});

t.test('/metrics has per-process memory, heap, event-loop utilization and descriptors for the master and each live worker', async (t) => {
  const m = new MasterMetrics();
  const g = new FakeGeneration(3);
  m.watch(g as unknown as Generation);
  const w = g.spawn() as ReturnType<FakeGeneration['spawn']> & { pid?: number };
  w.pid = 4242;
  w.stats = { connections: 0, requests: 0, process: { rss: 50_000_000, heapUsed: 9_000_000, heapTotal: 12_000_000, eventLoopUtilization: 0.25, openFds: 31 } } as never;
  const samples = parseExposition(m.render({ version: '1', startedAt: 0 })).samples;
  const worker = { role: 'worker', pid: '4242', generation: '3' };
  t.equal(sampleValue(samples, 'baton_process_resident_memory_bytes', worker), 50_000_000);
  t.equal(sampleValue(samples, 'baton_process_heap_used_bytes', worker), 9_000_000);
  t.equal(sampleValue(samples, 'baton_process_event_loop_utilization', worker), 0.25);
  t.equal(sampleValue(samples, 'baton_process_open_fds', worker), 31);
  const master = { role: 'master', pid: String(process.pid) };
  t.ok((sampleValue(samples, 'baton_process_resident_memory_bytes', master) ?? 0) > 0, 'the master measures itself');
  t.ok((sampleValue(samples, 'baton_process_open_fds', master) ?? 0) > 0);
  const elu = sampleValue(samples, 'baton_process_event_loop_utilization', master) ?? -1;
  t.ok(elu >= 0 && elu <= 1, `utilization is a share (${elu})`);
  g.exit(w);
  const after = parseExposition(m.render({ version: '1', startedAt: 0 })).samples;
  t.equal(sampleValue(after, 'baton_process_resident_memory_bytes', worker), undefined, 'an exited worker has no gauge');
});

t.test('/metrics has one up/down gauge per upstream target', async (t) => {
  const m = new MasterMetrics();
  const health = [{ name: 'app', targets: [
    { target: '127.0.0.1:9001', state: 'up' as const, since: '2026-01-01T00:00:00.000Z', reason: null },
    { target: '127.0.0.1:9002', state: 'down' as const, since: '2026-01-01T00:00:01.000Z', reason: '1 failure(s) within fail_timeout' },
  ] }];
  const samples = parseExposition(m.render({ version: '1', startedAt: 0, health })).samples;
  t.equal(sampleValue(samples, 'baton_upstream_target_up', { upstream: 'app', target: '127.0.0.1:9001' }), 1);
  t.equal(sampleValue(samples, 'baton_upstream_target_up', { upstream: 'app', target: '127.0.0.1:9002' }), 0);
});
