/** @module The master's reducer: every nginx edge case as an event sequence and the effects it produces. */
import t from 'tap';
import type { Config } from '../../../lib/config/types.js';
import { initialState, type Effect, type MasterEvent, type MasterState } from '../../../lib/master/state.js';
import { reduce } from '../../../lib/master/reduce.js';
import { masterConfig as config } from './fixture.js';

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

/** Effect types that act on the world (logs, systemd notifications and counts left out; they have their own tests). */
function mech(effects: readonly Effect[]): string[] {
  return effects.filter((e) => e.type !== 'log' && e.type !== 'notify' && e.type !== 'settled').map((e) => e.type);
}

const settled = (effects: readonly Effect[]) => effects.filter((e) => e.type === 'settled').map((e) => (e as { outcome: string; operation: string }).operation + ':' + (e as { outcome: string }).outcome);
const replies = (effects: readonly Effect[]) => effects.filter((e): e is Extract<Effect, { type: 'reply' }> => e.type === 'reply');

const started: MasterEvent[] = [{ type: 'generationReady', id: 1 }, { type: 'pidFileWritten' }];
const newConfig = config({ pidFile: '/tmp/y.pid' });
const upgraded: MasterEvent[] = [...started, { type: 'upgrade' }, { type: 'oldbinRenamed' }, { type: 'newMasterSpawned', pid: 99 }];

t.test('a cold start serves the admin listener at once; a new binary waits for its old master to hand it over', async (t) => {
  t.same(run([]).types, ['openAdmin', 'startGeneration']);
  t.same(run([], { oldMasterAlive: true }).types, ['startGeneration']);
  t.same(mech(reduce(run([], { oldMasterAlive: true }).state, { type: 'adminHandedOver' }).effects), ['openAdmin']);
  t.same(mech(reduce(run([], { oldMasterAlive: true }).state, { type: 'oldMasterGone' }).effects), ['openAdmin'], 'or once it has left');
});

t.test('the master writes its pid file once the first generation serves, and announces ready only once it is written', async (t) => {
  const ready = run([{ type: 'generationReady', id: 1 }]);
  t.same(ready.types.slice(2), ['closeUnusedListeners', 'writePidFile']);
  t.equal(ready.state.phase, 'starting', 'not running before the pid file names it');
  const written = reduce(ready.state, { type: 'pidFileWritten' });
  t.same(mech(written.effects), ['announceReady']);
  t.equal(written.state.phase, 'running');
});

t.test('a pid file that cannot be written at start: no READY, the reason logged, workers drained, exit 4', async (t) => {
  const r = run([{ type: 'generationReady', id: 1 }, { type: 'pidFileFailed', reason: 'cannot write the pid file /ro/x.pid: EACCES' }]);
  t.notOk(r.types.includes('announceReady'));
  t.match(r.effects.find((e) => e.type === 'log' && e.level === 'error'), { msg: /cannot start: cannot write the pid file \/ro\/x.pid: EACCES/ });
  t.same(r.effects.find((e) => e.type === 'startupFailed'), { type: 'startupFailed', reason: 'cannot write the pid file /ro/x.pid: EACCES' }, 'said on stderr and to an old master');
  t.equal(r.types.at(-1), 'drainGeneration');
  const gone = reduce(r.state, { type: 'generationGone', id: 1 });
  t.same(gone.effects.at(-1), { type: 'exit', code: 4 }, 'exit 4 as soon as the workers have gone');
});

t.test('a first generation that cannot start makes the master exit 4 and say why', async (t) => {
  const { effects } = run([{ type: 'generationFailed', id: 1, reason: 'cannot listen on 127.0.0.1:80: EADDRINUSE' }]);
  t.same(effects.at(-1), { type: 'exit', code: 4 }, 'exit code 4: could not start');
  t.ok(effects.some((e) => e.type === 'startupFailed' && e.reason.includes('127.0.0.1:80')));
});

t.test('an admin listener that cannot open at start stops the master with exit 4; later it is only logged', async (t) => {
  const r = run([{ type: 'adminFailed', reason: 'cannot listen on 127.0.0.1:9901: EADDRINUSE' }]);
  t.ok(r.types.includes('startupFailed') && r.types.includes('drainGeneration'));
  t.same(reduce(r.state, { type: 'generationGone', id: 1 }).effects.at(-1), { type: 'exit', code: 4 });
  const later = reduce(run(started).state, { type: 'adminFailed', reason: 'x' });
  t.same(mech(later.effects), []);
});

t.test('HUP with a valid config starts a new generation and drains the old one once it is ready', async (t) => {
  const r1 = run([...started, { type: 'reload' }, { type: 'configLoaded', config: newConfig }]);
  t.same(r1.types.slice(-2), ['loadConfig', 'startGeneration']);
  t.same(r1.state.generations.map((g) => [g.id, g.status]), [[1, 'active'], [2, 'starting']]);
  const r2 = reduce(r1.state, { type: 'generationReady', id: 2 });
  t.same(mech(r2.effects), ['drainGeneration', 'closeUnusedListeners', 'applyMasterSettings']);
  t.match(r2.effects.find((e) => e.type === 'applyMasterSettings'), { previous: config() }, 'the master moves its own settings from the old config');
  t.same(settled(r2.effects), ['reload:ok']);
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
  t.same(replies(r.effects), [{ type: 'reply', id: 7, outcome: { ok: false, errors: ['f:3:5: bad', 'f:9:1: worse'] } }]);
  t.same(settled(r.effects), ['reload:failed']);
});

t.test('a new generation that fails to start leaves the running one serving and answers the reload', async (t) => {
  const r = run([...started, { type: 'reload', reply: 1 }, { type: 'configLoaded', config: newConfig }, { type: 'generationFailed', id: 2, reason: 'cannot listen' }]);
  t.same(r.state.generations.map((g) => [g.id, g.status]), [[1, 'active']]);
  t.same(replies(r.effects), [{ type: 'reply', id: 1, outcome: { ok: false, errors: ['cannot listen'] } }]);
  t.equal(r.state.reload, null, 'the next reload is not queued behind it');
});

t.test('a HUP during a reload is queued and run after it', async (t) => {
  const r = run([...started, { type: 'reload' }, { type: 'reload', reply: 4 }, { type: 'configLoaded', config: newConfig }, { type: 'generationReady', id: 2 }]);
  t.equal(r.types.at(-1), 'loadConfig');
  t.same(r.state.reload, { stage: 'loading', generation: null, replies: [4] });
});

t.test('reload, reload, WINCH: both POST /reload requests are answered', async (t) => {
  const r = run([...started, { type: 'reload', reply: 1 }, { type: 'reload', reply: 2 }, { type: 'winch' }]);
  t.same(replies(r.effects).map((e) => e.id).sort(), [1, 2]);
  t.same(replies(r.effects).map((e) => e.outcome), [{ ok: false, errors: ['interrupted by WINCH'] }, { ok: false, errors: ['interrupted by WINCH'] }]);
  t.equal(r.state.queuedReload, null);
  t.same(settled(r.effects), ['reload:failed'], 'the reload that ran is counted; the queued one never started');
});

/** A small deterministic PRNG (mulberry32), so the sequence below is the same on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('whatever the order of signals and outcomes, every reload request is answered exactly once', async (t) => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    let state = run(started).state;
    const answered = new Map<number, number>();
    let asked = 0;
    const feed = (e: MasterEvent) => {
      const step = reduce(state, e);
      state = step.state;
      for (const r of replies(step.effects)) answered.set(r.id, (answered.get(r.id) ?? 0) + 1);
    };
    for (let i = 0; i < 25; i++) {
      const starting = state.generations.filter((g) => g.status === 'starting').map((g) => g.id);
      const pick = Math.floor(rand() * 8);
      if (pick <= 2) feed({ type: 'reload', reply: ++asked });
      else if (pick === 3) feed({ type: 'configLoaded', config: config() });
      else if (pick === 4) feed({ type: 'configInvalid', errors: [] });
      else if (pick === 5 && starting.length) feed({ type: rand() < 0.5 ? 'generationReady' : 'generationFailed', id: starting[0]!, reason: 'x' } as MasterEvent);
      else if (pick === 6 && rand() < 0.3) feed({ type: 'winch' });
      else if (pick === 7 && rand() < 0.2) feed({ type: 'upgrade' });
    }
    // Then the master leaves: whatever is still waiting must be answered too.
    feed({ type: rand() < 0.5 ? 'quit' : 'stop' });
    const unanswered = Array.from({ length: asked }, (_, i) => i + 1).filter((id) => answered.get(id) !== 1);
    if (unanswered.length) t.fail(`seed ${seed}: requests ${unanswered.join(', ')} answered ${unanswered.map((id) => answered.get(id) ?? 0).join(', ')} times`);
  }
  t.pass('300 random sequences, every reply exactly once');
});

t.test('USR2 renames the pid file, then spawns a new master', async (t) => {
  const r = run([...started, { type: 'upgrade' }]);
  t.same(r.types.at(-1), 'renamePidToOldbin');
  t.same(r.state.upgrade, { stage: 'renaming', pid: null, failure: null });
  const renamed = reduce(r.state, { type: 'oldbinRenamed' });
  t.same(mech(renamed.effects), ['spawnNewMaster']);
});

t.test('a pid file that cannot be renamed refuses the upgrade, and nothing is restored', async (t) => {
  const r = run([...started, { type: 'upgrade' }, { type: 'oldbinRenameFailed', reason: 'cannot rename /tmp/x.pid: EACCES' }]);
  t.equal(r.state.upgrade, null);
  t.notOk(r.types.includes('spawnNewMaster'));
  t.notOk(r.types.includes('restorePidFromOldbin'), 'a .oldbin left by someone else is not put in place');
  t.same(settled(r.effects), ['upgrade:failed']);
});

t.test('a second USR2 while an upgrade is in progress is refused', async (t) => {
  const again = reduce(run(upgraded).state, { type: 'upgrade' });
  t.same(again.effects.map((e) => e.type), ['log'], 'nothing but a log line');
  t.match(again.effects[0], { level: 'warn', msg: /already in progress/ });
});

t.test('USR2 in a new master whose old master lives is refused', async (t) => {
  const r = run([...started, { type: 'upgrade' }], { oldMasterAlive: true });
  t.equal(r.state.upgrade, null);
  t.notOk(r.types.includes('renamePidToOldbin'));
  const after = run([...started, { type: 'oldMasterGone' }, { type: 'upgrade' }], { oldMasterAlive: true });
  t.ok(after.types.includes('renamePidToOldbin'), 'allowed once the old master has left');
});

t.test('a spawn that fails restores the pid file; an error from a new master already running does not', async (t) => {
  const failed = run([...started, { type: 'upgrade' }, { type: 'oldbinRenamed' }, { type: 'newMasterSpawnFailed', reason: 'spawn ENOENT' }]);
  t.equal(failed.types.at(-1), 'restorePidFromOldbin');
  t.equal(failed.state.upgrade, null);
  const late = reduce(run([...upgraded, { type: 'newMasterReady', pid: 99 }]).state, { type: 'newMasterSpawnFailed', reason: 'EPIPE' });
  t.same(late.effects, [], 'a late error event after the new master is alive changes nothing');
  t.same(late.state.upgrade, { stage: 'ready', pid: 99, failure: null });
});

t.test('a new master that exits before it is ready makes the old one restore its pid file and carry on', async (t) => {
  const r = run([...upgraded, { type: 'newMasterExited', pid: 99, code: 1, signal: null }]);
  t.same(r.types.slice(-3), ['disarmUpgradeDeadline', 'restorePidFromOldbin', 'openAdmin']);
  t.equal(r.state.upgrade, null);
  t.same(r.state.generations.map((g) => g.status), ['active']);
  t.match(r.effects.find((e) => e.type === 'settled'), { outcome: 'failed', reason: 'the new master exited (code 1) before it was ready' });
});

t.test('the reason a new master gives for failing is what the old master keeps', async (t) => {
  const r = run([...upgraded, { type: 'newMasterFailed', pid: 99, reason: 'Error: cannot write the pid file' }, { type: 'newMasterExited', pid: 99, code: 4, signal: null }]);
  t.match(r.effects.find((e) => e.type === 'log' && e.level === 'error'), { msg: /the new master cannot start: Error: cannot write the pid file/ });
  t.match(r.effects.find((e) => e.type === 'settled'), { outcome: 'failed', reason: 'Error: cannot write the pid file' });
});

t.test('a new master that is not ready in time is killed, then the pid file is restored', async (t) => {
  const r = run([...upgraded, { type: 'upgradeDeadline' }]);
  t.same(r.effects.at(-1), { type: 'killNewMaster', pid: 99 });
  const after = reduce(r.state, { type: 'newMasterExited', pid: 99, code: null, signal: 'SIGTERM' });
  t.ok(after.effects.some((e) => e.type === 'restorePidFromOldbin'));
  t.match(after.effects.find((e) => e.type === 'settled'), { outcome: 'failed', reason: /not ready within upgrade_timeout/ });
});

t.test('a "ready" already queued behind the upgrade deadline is refused: no admin hand-over, no ok count', async (t) => {
  const r = run([...upgraded, { type: 'upgradeDeadline' }, { type: 'newMasterReady', pid: 99 }]);
  t.notOk(r.types.includes('releaseAdmin'), 'the admin listener stays');
  t.same(settled(r.effects), [], 'not counted ok');
  t.equal(r.state.upgrade?.stage, 'abandoned');
  const exited = reduce(r.state, { type: 'newMasterExited', pid: 99, code: null, signal: 'SIGTERM' });
  t.same(settled(exited.effects), ['upgrade:failed'], 'counted once, as failed');
});

t.test('a ready new master gets the admin listener and the deadline is disarmed', async (t) => {
  const r = run([...upgraded, { type: 'newMasterReady', pid: 99 }]);
  t.same(r.types.slice(-2), ['disarmUpgradeDeadline', 'releaseAdmin']);
  t.same(r.state.upgrade, { stage: 'ready', pid: 99, failure: null });
  t.same(settled(r.effects), ['upgrade:ok']);
  const late = reduce(r.state, { type: 'upgradeDeadline' });
  t.same(late.effects, [], 'a deadline after ready does nothing');
});

t.test('WINCH drains the workers but keeps the master and its sockets', async (t) => {
  const r = run([...upgraded, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }]);
  t.equal(r.types.at(-1), 'drainGeneration');
  t.equal(r.state.winched, true);
  const gone = reduce(r.state, { type: 'generationGone', id: 1 });
  t.notOk(gone.effects.some((e) => e.type === 'exit'), 'the master stays without workers');
  t.equal(gone.state.phase, 'running');
});

t.test('HUP after WINCH restarts workers on the current config without re-reading the file', async (t) => {
  const r = run([...upgraded, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }, { type: 'generationGone', id: 1 }, { type: 'reload' }]);
  t.notOk(r.effects.slice(-3).some((e) => e.type === 'loadConfig'));
  const start = r.effects.at(-1);
  t.match(start, { type: 'startGeneration', id: 2 });
  t.equal((start as { config: Config }).config, r.state.config);
  t.equal(r.state.winched, false);
});

t.test('when a new master exits after WINCH, the old master restores its pid file, takes the admin back and starts workers again', async (t) => {
  const r = run([...upgraded, { type: 'newMasterReady', pid: 99 }, { type: 'winch' }, { type: 'newMasterExited', pid: 99, code: 0, signal: null }]);
  t.same(r.types.slice(-4), ['disarmUpgradeDeadline', 'restorePidFromOldbin', 'openAdmin', 'startGeneration']);
  t.same(settled(r.effects).at(-1), 'upgrade:rolled_back');
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
  const rolled = run([...upgraded, { type: 'newMasterReady', pid: 99 }, { type: 'newMasterExited', pid: 99, code: 0, signal: null }]);
  t.match(notes(rolled.effects), [{ MAINPID: 'self', READY: '1' }]);
  const handedOver = run([...upgraded, { type: 'newMasterReady', pid: 99 }, { type: 'quit' }]);
  t.same(notes(handedOver.effects), [], 'an old master leaving after a good upgrade does not tell systemd the service stops');
  const early = run([...upgraded, { type: 'quit' }]);
  t.same(notes(early.effects), [], 'nor when it leaves before the new master said it was ready');
});
