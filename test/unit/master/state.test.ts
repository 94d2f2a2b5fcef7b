import t from 'tap';
import type { Config } from '../../../lib/config/types.js';
import { DEFAULT_LIMITS } from '../../../lib/config/sections/limits.js';
import { ROUTE_RULE_DEFAULTS } from '../../../lib/config/defaults.js';
import { initialState, reduce, type Effect, type MasterEvent, type MasterState } from '../../../lib/master/state.js';

function config(pidFile = '/tmp/x.pid'): Config {
  return {
    file: '/tmp/baton.yaml', pidFile, workers: 2, shutdownTimeout: 30_000, upgradeTimeout: 60_000, user: null,
    log: { level: 'info', error: { kind: 'stderr' }, access: null, queryStrings: true }, admin: null,
    listeners: [{ address: { key: '127.0.0.1:8080', host: '127.0.0.1', port: 8080, family: 4 }, h2c: false, tls: null }],
    limits: DEFAULT_LIMITS,
    upstreams: {}, routes: [{ host: null, path: '/', upstream: null, return: { status: 200, body: '', headers: {} }, maxBodySize: 0, ...ROUTE_RULE_DEFAULTS }],
    trustedProxies: [], compression: null,
  };
}

/** Run events from the initial state; return the final state and the effect types (logs left out). */
function run(events: MasterEvent[], opts = { oldMasterAlive: false }): { state: MasterState; effects: Effect[]; types: string[] } {
  let step = initialState(config(), opts);
  const effects: Effect[] = [...step.effects];
  for (const e of events) {
    step = reduce(step.state, e);
    effects.push(...step.effects);
  }
  return { state: step.state, effects, types: mech(effects) };
}

/** Effect types that act on the world (logs and systemd notifications left out; they have their own test). */
function mech(effects: readonly Effect[]): string[] {
  return effects.filter((e) => e.type !== 'log' && e.type !== 'notify').map((e) => e.type);
}

const started: MasterEvent[] = [{ type: 'generationReady', id: 1 }];
const newConfig = config('/tmp/y.pid');

t.test('the master writes its pid file and announces ready only once the first generation serves', async (t) => {
  const { state, types } = run(started);
  t.equal(state.phase, 'running');
  t.same(types, ['startGeneration', 'closeUnusedListeners', 'writePidFile', 'announceReady']);
});

t.test('a first generation that cannot start makes the master exit non-zero', async (t) => {
  const { effects } = run([{ type: 'generationFailed', id: 1, reason: 'EADDRINUSE' }]);
  t.same(effects.at(-1), { type: 'exit', code: 4 }, 'exit code 4: could not start');
});

t.test('HUP with a valid config starts a new generation and drains the old one once it is ready', async (t) => {
  const r1 = run([...started, { type: 'reload' }, { type: 'configLoaded', config: newConfig }]);
  t.same(r1.types.slice(-2), ['loadConfig', 'startGeneration']);
  t.same(r1.state.generations.map((g) => [g.id, g.status]), [[1, 'active'], [2, 'starting']]);
  const r2 = reduce(r1.state, { type: 'generationReady', id: 2 });
  t.same(mech(r2.effects), ['drainGeneration', 'closeUnusedListeners', 'applyMasterSettings']);
  t.match(r2.effects.find((e) => e.type === 'applyMasterSettings'), { previous: config() }, 'the master moves its own settings from the old config');
  t.equal(r2.state.config, newConfig);
  t.same(r2.state.generations.map((g) => [g.id, g.status]), [[1, 'draining'], [2, 'active']]);
});

t.test('an invalid HUP logs every error and changes nothing', async (t) => {
  const before = run(started).state;
  const r = run([...started, { type: 'reload', reply: 7 }, { type: 'configInvalid', errors: [{ file: 'f', line: 3, col: 5, message: 'bad' }, { file: 'f', line: 9, col: 1, message: 'worse' }] }]);
  t.same(r.state.generations, before.generations);
  t.equal(r.state.reload, null);
  const log = r.effects.find((e) => e.type === 'log' && e.level === 'error');
  t.same((log as unknown as { fields: { errors: string[] } }).fields.errors, ['f:3:5: bad', 'f:9:1: worse']);
  t.same(r.effects.find((e) => e.type === 'reply'), { type: 'reply', id: 7, outcome: { ok: false, errors: ['f:3:5: bad', 'f:9:1: worse'] } });
});

t.test('a new generation that fails to start leaves the running one serving and answers the reload', async (t) => {
  const r = run([...started, { type: 'reload', reply: 1 }, { type: 'configLoaded', config: newConfig }, { type: 'generationFailed', id: 2, reason: 'cannot listen' }]);
  t.same(r.state.generations.map((g) => [g.id, g.status]), [[1, 'active']]);
  t.same(r.effects.find((e) => e.type === 'reply'), { type: 'reply', id: 1, outcome: { ok: false, errors: ['cannot listen'] } });
});

t.test('a HUP during a reload is queued and run after it', async (t) => {
  const r = run([...started, { type: 'reload' }, { type: 'reload', reply: 4 }, { type: 'configLoaded', config: newConfig }, { type: 'generationReady', id: 2 }]);
  t.equal(r.types.at(-1), 'loadConfig');
  t.same(r.state.reload, { stage: 'loading', generation: null, replies: [4] });
});

t.test('USR2 renames the pid file and spawns a new master', async (t) => {
  const r = run([...started, { type: 'upgrade' }]);
  t.same(r.types.slice(-2), ['renamePidToOldbin', 'spawnNewMaster']);
  t.same(r.state.upgrade, { stage: 'spawning', pid: null });
});

t.test('a second USR2 while an upgrade is in progress is refused', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }]);
  const again = reduce(r.state, { type: 'upgrade' });
  t.same(again.effects.map((e) => e.type), ['log'], 'nothing but a log line');
  t.match(again.effects[0], { level: 'warn', msg: /already in progress/ });
});

t.test('USR2 in a new master whose old master lives is refused', async (t) => {
  const r = run([...started, { type: 'upgrade' }], { oldMasterAlive: true });
  t.equal(r.state.upgrade, null);
  t.notOk(r.types.includes('spawnNewMaster'));
  const after = run([...started, { type: 'oldMasterGone' }, { type: 'upgrade' }], { oldMasterAlive: true });
  t.ok(after.types.includes('spawnNewMaster'), 'allowed once the old master has left');
});

t.test('a new master that exits before it is ready makes the old one restore its pid file and carry on', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterExited', pid: 99, code: 1, signal: null }]);
  t.same(r.types.slice(-2), ['disarmUpgradeDeadline', 'restorePidFromOldbin']);
  t.equal(r.state.upgrade, null);
  t.same(r.state.generations.map((g) => g.status), ['active']);
});

t.test('a new master that is not ready in time is killed, then the pid file is restored', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'upgradeDeadline' }]);
  t.same(r.effects.at(-1), { type: 'killNewMaster', pid: 99 });
  const after = reduce(r.state, { type: 'newMasterExited', pid: 99, code: null, signal: 'SIGTERM' });
  t.ok(after.effects.some((e) => e.type === 'restorePidFromOldbin'));
});

t.test('a ready new master gets the admin listener and the deadline is disarmed', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }]);
  t.same(r.types.slice(-2), ['disarmUpgradeDeadline', 'releaseAdmin']);
  t.same(r.state.upgrade, { stage: 'ready', pid: 99 });
  const late = reduce(r.state, { type: 'upgradeDeadline' });
  t.same(late.effects, [], 'a deadline after ready does nothing');
});

t.test('WINCH drains the workers but keeps the master and its sockets', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }]);
  t.equal(r.types.at(-1), 'drainGeneration');
  t.equal(r.state.winched, true);
  const gone = reduce(r.state, { type: 'generationGone', id: 1 });
  t.notOk(gone.effects.some((e) => e.type === 'exit'), 'the master stays without workers');
  t.equal(gone.state.phase, 'running');
});

t.test('HUP after WINCH restarts workers on the current config without re-reading the file', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }, { type: 'generationGone', id: 1 }, { type: 'reload' }]);
  t.notOk(r.effects.slice(-3).some((e) => e.type === 'loadConfig'));
  const start = r.effects.at(-1);
  t.match(start, { type: 'startGeneration', id: 2 });
  t.equal((start as { config: Config }).config, r.state.config);
  t.equal(r.state.winched, false);
});

t.test('when a new master exits after WINCH, the old master restores its pid file and starts workers again', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }, { type: 'newMasterExited', pid: 99, code: 0, signal: null }]);
  t.same(r.types.slice(-4), ['disarmUpgradeDeadline', 'restorePidFromOldbin', 'reclaimAdmin', 'startGeneration']);
});

t.test('QUIT with active connections drains and exits only when the last generation has gone', async (t) => {
  const r = run([...started, { type: 'quit' }]);
  t.equal(r.types.at(-1), 'drainGeneration');
  t.notOk(r.types.includes('exit'));
  const gone = reduce(r.state, { type: 'generationGone', id: 1 });
  t.same(gone.effects.at(-1), { type: 'exit', code: 0 });
});

t.test('TERM during a drain stops the workers at once and escalates after a deadline', async (t) => {
  const r = run([...started, { type: 'quit' }, { type: 'stop' }]);
  t.same(r.types.slice(-2), ['stopGeneration', 'armStopDeadline']);
  const late = reduce(r.state, { type: 'stopDeadline' });
  t.same(late.effects.find((e) => e.type === 'stopGeneration'), { type: 'stopGeneration', id: 1, signal: 'SIGKILL' });
});

t.test('a reload during QUIT is refused and its caller is told', async (t) => {
  const r = run([...started, { type: 'quit' }, { type: 'reload', reply: 3 }]);
  t.same(r.effects.at(-1), { type: 'reply', id: 3, outcome: { ok: false, errors: ['master is quitting'] } });
});

t.test('USR1 reopens logs', async (t) => {
  t.same(run([...started, { type: 'reopen' }]).types.at(-1), 'reopenLogs');
});

t.test('systemd hears RELOADING then READY around a reload, STOPPING on quit, and MAINPID back after a rollback', async (t) => {
  const notes = (effects: readonly Effect[]) => effects.filter((e) => e.type === 'notify').map((e) => (e as { fields: Record<string, string> }).fields);
  const reload = run([...started, { type: 'reload' }, { type: 'configLoaded', config: newConfig }, { type: 'generationReady', id: 2 }]);
  t.match(notes(reload.effects), [{ RELOADING: '1' }, { READY: '1' }]);
  const bad = run([...started, { type: 'reload' }, { type: 'configInvalid', errors: [] }]);
  t.match(notes(bad.effects), [{ RELOADING: '1' }, { READY: '1' }], 'a failed reload still ends with READY: the old config serves');
  t.match(notes(run([...started, { type: 'quit' }]).effects), [{ STOPPING: '1' }]);
  const rolled = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }, { type: 'newMasterExited', pid: 99, code: 0, signal: null }]);
  t.match(notes(rolled.effects), [{ MAINPID: 'self', READY: '1' }]);
  const handedOver = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'newMasterReady', pid: 99 }, { type: 'quit' }]);
  t.same(notes(handedOver.effects), [], 'an old master leaving after a good upgrade does not tell systemd the service stops');
  const early = run([...started, { type: 'upgrade' }, { type: 'newMasterSpawned', pid: 99 }, { type: 'quit' }]);
  t.same(notes(early.effects), [], 'nor when it leaves before the new master said it was ready');
});
