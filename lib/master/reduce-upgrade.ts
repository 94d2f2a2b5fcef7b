/**
 * @module The master's decisions about a binary upgrade (USR2), on both sides. Old master: rename the pid file,
 * spawn the new master, accept its "ready" only while waiting for it, hand it the admin listener, and roll back
 * (pid file, MAINPID, admin, workers after WINCH) when it fails or leaves. New master: take the admin listener
 * when the old one hands it over or leaves.
 */
import type { Effect, MasterEvent, MasterState, Step, UpgradeState } from './state.js';
import { log, unchanged } from './state.js';

type On<K extends MasterEvent['type']> = Extract<MasterEvent, { type: K }>;

export function onUpgrade(state: MasterState): Step {
  if (state.phase !== 'running') return { state, effects: [log('warn', `upgrade refused: master is ${state.phase}`)] };
  if (state.upgrade) return { state, effects: [log('warn', 'upgrade refused: an upgrade is already in progress', { newMaster: state.upgrade.pid })] };
  if (state.oldMasterAlive) {
    // Like nginx: a new binary whose old master lives must not start a third; finish or roll back first.
    return { state, effects: [log('warn', 'upgrade refused: this master is a new binary and its old master is still running')] };
  }
  return {
    state: { ...state, upgrade: { stage: 'renaming', pid: null, failure: null } },
    effects: [log('info', 'upgrade: starting a new master from the code on disk'), { type: 'renamePidToOldbin' }],
  };
}

export function onOldbinRenamed(state: MasterState): Step {
  if (state.upgrade?.stage !== 'renaming') return unchanged(state);
  if (state.phase !== 'running') {
    // A QUIT or TERM came in between: no new master for a master that leaves.
    return { state: { ...state, upgrade: null }, effects: [log('warn', `upgrade abandoned: master is ${state.phase}`), { type: 'restorePidFromOldbin' }, settledFailed(`master is ${state.phase}`)] };
  }
  return { state: { ...state, upgrade: { ...state.upgrade, stage: 'spawning' } }, effects: [{ type: 'spawnNewMaster' }] };
}

/** Nothing was renamed, so nothing is restored. */
export function onOldbinRenameFailed(state: MasterState, event: On<'oldbinRenameFailed'>): Step {
  if (state.upgrade?.stage !== 'renaming') return unchanged(state);
  return { state: { ...state, upgrade: null }, effects: [log('error', `upgrade failed, carrying on: ${event.reason}`), settledFailed(event.reason)] };
}

export function onNewMasterSpawned(state: MasterState, event: On<'newMasterSpawned'>): Step {
  if (state.upgrade?.stage !== 'spawning' || state.upgrade.pid !== null) return unchanged(state);
  return {
    state: { ...state, upgrade: { ...state.upgrade, pid: event.pid } },
    effects: [log('info', 'new master started', { newMaster: event.pid }), { type: 'armUpgradeDeadline' }],
  };
}

/**
 * The spawn itself failed (no process). A child's 'error' can also come later, from a running process (a failed
 * IPC write, a failed kill): once the new master has a pid, its exit is what counts, not this.
 */
export function onNewMasterSpawnFailed(state: MasterState, event: On<'newMasterSpawnFailed'>): Step {
  if (state.upgrade?.stage !== 'spawning' || state.upgrade.pid !== null) return unchanged(state);
  return {
    state: { ...state, upgrade: null },
    effects: [log('error', `upgrade failed, carrying on: ${event.reason}`), { type: 'restorePidFromOldbin' }, settledFailed(event.reason)],
  };
}

/** The new master says why it cannot start (its own stderr may be a closed terminal): logged here, kept for later. */
export function onNewMasterFailed(state: MasterState, event: On<'newMasterFailed'>): Step {
  const u = state.upgrade;
  if (!u || (u.pid !== null && u.pid !== event.pid) || u.stage === 'ready') return unchanged(state);
  return {
    state: { ...state, upgrade: { ...u, failure: event.reason } },
    effects: [log('error', `the new master cannot start: ${event.reason}`, { newMaster: event.pid })],
  };
}

export function onNewMasterReady(state: MasterState, event: On<'newMasterReady'>): Step {
  const u = state.upgrade;
  if (!u || u.pid !== event.pid) return unchanged(state);
  if (u.stage === 'abandoned') return readyTooLate(state, u);
  if (u.stage !== 'spawning') return unchanged(state);
  return {
    state: { ...state, upgrade: { ...u, stage: 'ready' } },
    effects: [
      log('info', 'new master is ready; both generations serve until WINCH/QUIT', { newMaster: event.pid }),
      { type: 'disarmUpgradeDeadline' },
      { type: 'releaseAdmin' },
      { type: 'settled', operation: 'upgrade', outcome: 'ok' },
    ],
  };
}

/** Its "ready" was already on its way when the deadline passed: the new master is being stopped, it stays so. */
function readyTooLate(state: MasterState, u: UpgradeState): Step {
  return { state, effects: [log('warn', 'the new master reported ready after upgrade_timeout; it is being stopped', { newMaster: u.pid })] };
}

export function onUpgradeDeadline(state: MasterState): Step {
  const u = state.upgrade;
  if (u?.stage !== 'spawning' || u.pid === null) return unchanged(state);
  const reason = u.failure ?? `not ready within upgrade_timeout (${state.config.upgradeTimeout} ms)`;
  return {
    state: { ...state, upgrade: { ...u, stage: 'abandoned', failure: reason } },
    effects: [log('error', `upgrade failed: the new master was ${u.failure ? 'failing' : 'not ready in time'}; killing it`, { newMaster: u.pid }), { type: 'killNewMaster', pid: u.pid }],
  };
}

export function onNewMasterExited(state: MasterState, event: On<'newMasterExited'>): Step {
  const u = state.upgrade;
  if (!u || u.pid !== event.pid) return unchanged(state);
  const how = event.signal ? `signal ${event.signal}` : `code ${event.code}`;
  const reason = u.failure ?? `the new master exited (${how}) before it was ready`;
  const effects: Effect[] = u.stage === 'ready'
    ? [log('warn', `new master exited (${how}); this master takes over again`, { newMaster: event.pid })]
    : [log('error', `upgrade failed: the new master exited before it was ready (${how}); carrying on`, { newMaster: event.pid, reason })];
  // systemd follows whichever master serves: take MAINPID back. The admin listener comes back too (it was
  // handed over only once the new master was ready; openAdmin does nothing when this master still serves it).
  effects.push(
    { type: 'disarmUpgradeDeadline' },
    { type: 'restorePidFromOldbin' },
    { type: 'notify', fields: { MAINPID: 'self', READY: '1', STATUS: 'upgrade rolled back' } },
    u.stage === 'ready' ? { type: 'settled', operation: 'upgrade', outcome: 'rolled_back' } : settledFailed(reason),
    { type: 'openAdmin' },
  );
  let next: MasterState = { ...state, upgrade: null };
  if (state.winched && state.phase === 'running') {
    // nginx: when the new master exits, the old one starts its workers again.
    const id = state.nextGeneration;
    effects.push(log('info', 'restarting workers after the new master left', { generation: id }), { type: 'startGeneration', id, config: state.config });
    next = { ...next, winched: false, nextGeneration: id + 1, generations: [...next.generations, { id, config: state.config, status: 'starting' }] };
  }
  return { state: next, effects };
}

/** New master: the old one stopped answering on the admin listener; this one takes it. */
export function onAdminHandedOver(state: MasterState): Step {
  return { state, effects: [{ type: 'openAdmin' }] };
}

/** New master: the old one has left (with or without handing the admin listener over). */
export function onOldMasterGone(state: MasterState): Step {
  if (!state.oldMasterAlive) return unchanged(state);
  return { state: { ...state, oldMasterAlive: false }, effects: [log('info', 'old master has left; this master may now be upgraded'), { type: 'openAdmin' }] };
}

const settledFailed = (reason: string): Effect => ({ type: 'settled', operation: 'upgrade', outcome: 'failed', reason });
