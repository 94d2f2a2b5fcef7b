/**
 * @module The master's decisions: a pure reducer from (state, event) to (state, effects). Signal handlers,
 * child exits, timers and the admin listener only produce events; `effects.ts` performs what comes out.
 * Every nginx edge case (double USR2, HUP after WINCH, new master dying, ...) is one unit test of this file.
 */
import type { Config, ConfigError } from '../config/types.js';
import { EXIT } from '../control/exit-codes.js';
import { formatConfigError } from '../config/errors.js';

export type GenerationStatus = 'starting' | 'active' | 'draining';

export interface GenerationState {
  readonly id: number;
  readonly config: Config;
  readonly status: GenerationStatus;
}

export type Phase = 'starting' | 'running' | 'quitting' | 'stopping';

export interface UpgradeState {
  /** spawning: new master started, not ready yet; ready: it reported ready (both serve). */
  readonly stage: 'spawning' | 'ready';
  readonly pid: number | null;
}

export interface ReloadState {
  readonly stage: 'loading' | 'starting';
  /** The generation being started for this reload. */
  readonly generation: number | null;
  /** Admin requests waiting for the outcome. */
  readonly replies: readonly number[];
}

export interface MasterState {
  readonly phase: Phase;
  /** The config of the newest active generation (what a HUP-after-WINCH restarts on). */
  readonly config: Config;
  readonly generations: readonly GenerationState[];
  readonly nextGeneration: number;
  readonly reload: ReloadState | null;
  /** A reload asked for while another was running: done next, with these replies. */
  readonly queuedReload: readonly number[] | null;
  readonly upgrade: UpgradeState | null;
  /** This master is a new binary and the master that spawned it is still alive. */
  readonly oldMasterAlive: boolean;
  /** WINCH drained our workers; the master keeps its sockets. */
  readonly winched: boolean;
}

export type ReloadOutcome = { readonly ok: true; readonly generation: number } | { readonly ok: false; readonly errors: readonly string[] };

export type MasterEvent =
  | { readonly type: 'reload'; readonly reply?: number }
  | { readonly type: 'reopen' }
  | { readonly type: 'upgrade' }
  | { readonly type: 'winch' }
  | { readonly type: 'quit' }
  | { readonly type: 'stop' }
  | { readonly type: 'stopDeadline' }
  | { readonly type: 'configLoaded'; readonly config: Config }
  | { readonly type: 'configInvalid'; readonly errors: readonly ConfigError[] }
  | { readonly type: 'generationReady'; readonly id: number }
  | { readonly type: 'generationFailed'; readonly id: number; readonly reason: string }
  | { readonly type: 'generationGone'; readonly id: number }
  | { readonly type: 'newMasterSpawned'; readonly pid: number }
  | { readonly type: 'newMasterSpawnFailed'; readonly reason: string }
  | { readonly type: 'newMasterReady'; readonly pid: number }
  | { readonly type: 'newMasterExited'; readonly pid: number; readonly code: number | null; readonly signal: string | null }
  | { readonly type: 'upgradeDeadline' }
  | { readonly type: 'oldMasterGone' };

export type LogLevel = 'info' | 'warn' | 'error';

export type Effect =
  | { readonly type: 'log'; readonly level: LogLevel; readonly msg: string; readonly fields?: Readonly<Record<string, unknown>> }
  | { readonly type: 'loadConfig' }
  | { readonly type: 'startGeneration'; readonly id: number; readonly config: Config }
  | { readonly type: 'drainGeneration'; readonly id: number }
  | { readonly type: 'stopGeneration'; readonly id: number; readonly signal: 'SIGTERM' | 'SIGKILL' }
  | { readonly type: 'closeUnusedListeners' }
  | { readonly type: 'reopenLogs' }
  | { readonly type: 'reply'; readonly id: number; readonly outcome: ReloadOutcome }
  | { readonly type: 'writePidFile' }
  /** A reload changed the config: the master's own settings (its log, its pid file) follow. */
  | { readonly type: 'applyMasterSettings'; readonly previous: Config }
  | { readonly type: 'announceReady' }
  | { readonly type: 'renamePidToOldbin' }
  | { readonly type: 'restorePidFromOldbin' }
  | { readonly type: 'spawnNewMaster' }
  | { readonly type: 'armUpgradeDeadline' }
  | { readonly type: 'disarmUpgradeDeadline' }
  | { readonly type: 'killNewMaster'; readonly pid: number }
  | { readonly type: 'releaseAdmin' }
  | { readonly type: 'reclaimAdmin' }
  | { readonly type: 'armStopDeadline' }
  | { readonly type: 'notify'; readonly fields: Readonly<Record<string, string>> }
  | { readonly type: 'exit'; readonly code: number };

export interface Step {
  readonly state: MasterState;
  readonly effects: readonly Effect[];
}

export function initialState(config: Config, opts: { oldMasterAlive: boolean; firstGeneration?: number }): Step {
  const first = opts.firstGeneration ?? 1;
  const state: MasterState = {
    phase: 'starting',
    config,
    generations: [{ id: first, config, status: 'starting' }],
    nextGeneration: first + 1,
    reload: null,
    queuedReload: null,
    upgrade: null,
    oldMasterAlive: opts.oldMasterAlive,
    winched: false,
  };
  return { state, effects: [{ type: 'startGeneration', id: first, config }] };
}

const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): Effect => ({ type: 'log', level, msg, ...(fields ? { fields } : {}) });

function withGen(state: MasterState, id: number, status: GenerationStatus): MasterState {
  return { ...state, generations: state.generations.map((g) => (g.id === id ? { ...g, status } : g)) };
}

function replyAll(replies: readonly number[], outcome: ReloadOutcome): Effect[] {
  return replies.map((id) => ({ type: 'reply', id, outcome }) as const);
}

/** The master may leave once it stops and nothing it runs is left. */
function maybeExit(state: MasterState, effects: Effect[]): Step {
  if ((state.phase === 'quitting' || state.phase === 'stopping') && state.generations.length === 0) {
    // The pid file (or .oldbin) is removed by the exit effect, only where it still names this master.
    effects.push(log('info', 'master exiting'), { type: 'exit', code: EXIT.OK });
  }
  return { state, effects };
}

/** Start the reload that was queued behind the one that just ended, if any. */
function runQueued(state: MasterState, effects: Effect[]): Step {
  if (state.queuedReload && state.phase === 'running') {
    const replies = state.queuedReload;
    const next = reduce({ ...state, queuedReload: null }, { type: 'reload' });
    return { state: { ...next.state, reload: next.state.reload ? { ...next.state.reload, replies } : null }, effects: [...effects, ...next.effects] };
  }
  return { state, effects };
}

export function reduce(state: MasterState, event: MasterEvent): Step {
  const effects: Effect[] = [];
  switch (event.type) {
    case 'reload': {
      const replies = event.reply !== undefined ? [event.reply] : [];
      if (state.phase !== 'running') {
        effects.push(log('warn', `reload ignored: master is ${state.phase}`), ...replyAll(replies, { ok: false, errors: [`master is ${state.phase}`] }));
        return { state, effects };
      }
      if (state.reload) {
        effects.push(log('info', 'reload queued behind the one in progress'));
        return { state: { ...state, queuedReload: [...(state.queuedReload ?? []), ...replies] }, effects };
      }
      if (state.winched && state.upgrade) {
        // nginx's rollback path: after WINCH, HUP restarts workers on the config we already have, without
        // re-reading a file that may now belong to the new binary.
        const id = state.nextGeneration;
        effects.push(log('info', 'restarting workers on the current config (rollback after WINCH)', { generation: id }), { type: 'startGeneration', id, config: state.config });
        return {
          state: {
            ...state,
            winched: false,
            nextGeneration: id + 1,
            generations: [...state.generations, { id, config: state.config, status: 'starting' }],
            reload: { stage: 'starting', generation: id, replies },
          },
          effects,
        };
      }
      effects.push(log('info', 'reloading configuration'), { type: 'notify', fields: { RELOADING: '1', STATUS: 'reloading' } }, { type: 'loadConfig' });
      return { state: { ...state, reload: { stage: 'loading', generation: null, replies } }, effects };
    }

    case 'configInvalid': {
      if (!state.reload || state.reload.stage !== 'loading') return { state, effects };
      const lines = event.errors.map(formatConfigError);
      effects.push(
        log('error', 'reload failed: invalid configuration, nothing changed', { errors: lines }),
        ...replyAll(state.reload.replies, { ok: false, errors: lines }),
        { type: 'notify', fields: { READY: '1', STATUS: 'reload failed: invalid configuration' } },
      );
      return runQueued({ ...state, reload: null }, effects);
    }

    case 'configLoaded': {
      if (!state.reload || state.reload.stage !== 'loading') return { state, effects };
      const id = state.nextGeneration;
      effects.push(log('info', 'configuration valid, starting a new generation', { generation: id }), { type: 'startGeneration', id, config: event.config });
      return {
        state: {
          ...state,
          nextGeneration: id + 1,
          generations: [...state.generations, { id, config: event.config, status: 'starting' }],
          reload: { ...state.reload, stage: 'starting', generation: id },
        },
        effects,
      };
    }

    case 'generationReady': {
      const gen = state.generations.find((g) => g.id === event.id);
      if (!gen || gen.status !== 'starting') return { state, effects };
      let next: MasterState = { ...withGen(state, gen.id, 'active'), config: gen.config };
      if (state.phase === 'quitting' || state.phase === 'stopping') {
        // A quit arrived while this generation started: it leaves with the rest.
        effects.push({ type: state.phase === 'quitting' ? 'drainGeneration' : 'stopGeneration', id: gen.id, ...(state.phase === 'stopping' ? { signal: 'SIGTERM' as const } : {}) } as Effect);
        return { state: withGen(next, gen.id, 'draining'), effects };
      }
      // The new generation serves; every older one that still accepts now drains.
      for (const old of next.generations) {
        if (old.id !== gen.id && old.status !== 'draining') {
          next = withGen(next, old.id, 'draining');
          effects.push({ type: 'drainGeneration', id: old.id });
        }
      }
      effects.push({ type: 'closeUnusedListeners' });
      if (state.phase !== 'starting' && gen.config !== state.config) effects.push({ type: 'applyMasterSettings', previous: state.config });
      if (state.phase === 'starting') {
        effects.push(log('info', 'serving', { generation: gen.id }), { type: 'writePidFile' }, { type: 'announceReady' });
        return { state: { ...next, phase: 'running' }, effects };
      }
      effects.push(log('info', 'generation ready', { generation: gen.id }));
      if (state.reload && state.reload.generation === gen.id) {
        effects.push(...replyAll(state.reload.replies, { ok: true, generation: gen.id }), { type: 'notify', fields: { READY: '1', STATUS: `serving, generation ${gen.id}` } });
        return runQueued({ ...next, reload: null }, effects);
      }
      return { state: next, effects };
    }

    case 'generationFailed': {
      const gen = state.generations.find((g) => g.id === event.id);
      if (!gen) return { state, effects };
      const next: MasterState = { ...state, generations: state.generations.filter((g) => g.id !== gen.id) };
      if (state.phase === 'starting') {
        effects.push(log('error', `cannot start: ${event.reason}`, { generation: gen.id }), { type: 'exit', code: EXIT.STARTUP_FAILED });
        return { state: next, effects };
      }
      if (gen.status !== 'starting') {
        effects.push(log('error', `generation failed: ${event.reason}`, { generation: gen.id }));
        return maybeExit(next, effects);
      }
      effects.push(log('error', `reload failed, the running generation keeps serving: ${event.reason}`, { generation: gen.id }), { type: 'closeUnusedListeners' });
      if (state.reload && state.reload.generation === gen.id) {
        effects.push(...replyAll(state.reload.replies, { ok: false, errors: [event.reason] }), { type: 'notify', fields: { READY: '1', STATUS: 'reload failed' } });
        return runQueued({ ...next, reload: null }, effects);
      }
      return maybeExit(next, effects);
    }

    case 'generationGone': {
      if (!state.generations.some((g) => g.id === event.id)) return { state, effects };
      const next: MasterState = { ...state, generations: state.generations.filter((g) => g.id !== event.id) };
      effects.push(log('info', 'generation left', { generation: event.id }), { type: 'closeUnusedListeners' });
      return maybeExit(next, effects);
    }

    case 'reopen':
      effects.push(log('info', 'reopening log files'), { type: 'reopenLogs' });
      return { state, effects };

    case 'winch': {
      if (state.phase !== 'running') return { state, effects };
      let next: MasterState = { ...state, winched: true };
      for (const g of state.generations) {
        if (g.status !== 'draining') {
          next = withGen(next, g.id, 'draining');
          effects.push({ type: 'drainGeneration', id: g.id });
        }
      }
      effects.push(log('info', 'WINCH: workers drain, the master keeps its listening sockets'));
      if (state.reload) {
        effects.push(...replyAll(state.reload.replies, { ok: false, errors: ['interrupted by WINCH'] }));
        next = { ...next, reload: null, queuedReload: null };
      }
      return { state: next, effects };
    }

    case 'quit':
    case 'stop': {
      if (state.phase === 'stopping' || (state.phase === 'quitting' && event.type === 'quit')) return { state, effects };
      const phase: Phase = event.type === 'quit' ? 'quitting' : 'stopping';
      let next: MasterState = { ...state, phase, reload: null, queuedReload: null };
      const pending = [...(state.reload?.replies ?? []), ...(state.queuedReload ?? [])];
      effects.push(log('info', event.type === 'quit' ? 'graceful stop' : 'fast stop'), ...replyAll(pending, { ok: false, errors: [`master is ${phase}`] }));
      // With a new master started (ready or not yet), the service does not stop: that master is its future.
      if (!state.upgrade) effects.push({ type: 'notify', fields: { STOPPING: '1' } });
      for (const g of state.generations) {
        if (event.type === 'quit') {
          if (g.status !== 'draining') effects.push({ type: 'drainGeneration', id: g.id });
        } else {
          effects.push({ type: 'stopGeneration', id: g.id, signal: 'SIGTERM' });
        }
        next = withGen(next, g.id, 'draining');
      }
      if (event.type === 'stop') effects.push({ type: 'armStopDeadline' });
      return maybeExit(next, effects);
    }

    case 'stopDeadline':
      for (const g of state.generations) effects.push({ type: 'stopGeneration', id: g.id, signal: 'SIGKILL' });
      if (state.generations.length) effects.push(log('warn', 'workers did not stop in time: killed'));
      return { state, effects };

    case 'upgrade': {
      if (state.phase !== 'running') {
        effects.push(log('warn', `upgrade refused: master is ${state.phase}`));
        return { state, effects };
      }
      if (state.upgrade) {
        effects.push(log('warn', 'upgrade refused: an upgrade is already in progress', { newMaster: state.upgrade.pid }));
        return { state, effects };
      }
      if (state.oldMasterAlive) {
        // Like nginx: a new binary whose old master lives must not start a third; finish or roll back first.
        effects.push(log('warn', 'upgrade refused: this master is a new binary and its old master is still running'));
        return { state, effects };
      }
      effects.push(log('info', 'upgrade: starting a new master from the code on disk'), { type: 'renamePidToOldbin' }, { type: 'spawnNewMaster' });
      return { state: { ...state, upgrade: { stage: 'spawning', pid: null } }, effects };
    }

    case 'newMasterSpawned':
      if (!state.upgrade) return { state, effects };
      effects.push(log('info', 'new master started', { newMaster: event.pid }), { type: 'armUpgradeDeadline' });
      return { state: { ...state, upgrade: { stage: 'spawning', pid: event.pid } }, effects };

    case 'newMasterSpawnFailed':
      effects.push(log('error', `upgrade failed, carrying on: ${event.reason}`), { type: 'restorePidFromOldbin' });
      return { state: { ...state, upgrade: null }, effects };

    case 'newMasterReady':
      if (!state.upgrade || state.upgrade.pid !== event.pid) return { state, effects };
      effects.push(log('info', 'new master is ready; both generations serve until WINCH/QUIT', { newMaster: event.pid }), { type: 'disarmUpgradeDeadline' }, { type: 'releaseAdmin' });
      return { state: { ...state, upgrade: { stage: 'ready', pid: event.pid } }, effects };

    case 'upgradeDeadline':
      if (!state.upgrade || state.upgrade.stage !== 'spawning' || state.upgrade.pid === null) return { state, effects };
      effects.push(log('error', 'upgrade failed: the new master was not ready in time; killing it', { newMaster: state.upgrade.pid }), { type: 'killNewMaster', pid: state.upgrade.pid });
      return { state, effects };

    case 'newMasterExited': {
      if (!state.upgrade || state.upgrade.pid !== event.pid) return { state, effects };
      const how = event.signal ? `signal ${event.signal}` : `code ${event.code}`;
      effects.push(
        log(state.upgrade.stage === 'ready' ? 'warn' : 'error', state.upgrade.stage === 'ready' ? `new master exited (${how}); this master takes over again` : `upgrade failed: the new master exited before it was ready (${how}); carrying on`, { newMaster: event.pid }),
        { type: 'disarmUpgradeDeadline' },
        { type: 'restorePidFromOldbin' },
      );
      // systemd follows whichever master serves: take MAINPID back.
      effects.push({ type: 'notify', fields: { MAINPID: 'self', READY: '1', STATUS: 'upgrade rolled back' } });
      if (state.upgrade.stage === 'ready') effects.push({ type: 'reclaimAdmin' });
      let next: MasterState = { ...state, upgrade: null };
      if (state.winched && state.phase === 'running') {
        // nginx: when the new master exits, the old one starts its workers again.
        const id = state.nextGeneration;
        effects.push(log('info', 'restarting workers after the new master left', { generation: id }), { type: 'startGeneration', id, config: state.config });
        next = { ...next, winched: false, nextGeneration: id + 1, generations: [...next.generations, { id, config: state.config, status: 'starting' }] };
      }
      return { state: next, effects };
    }

    case 'oldMasterGone':
      if (!state.oldMasterAlive) return { state, effects };
      effects.push(log('info', 'old master has left; this master may now be upgraded'));
      return { state: { ...state, oldMasterAlive: false }, effects };
  }
}
