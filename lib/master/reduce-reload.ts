/**
 * @module The master's decisions about reloads (HUP, POST /reload): load and validate, start a generation, answer
 * every waiting request once, queue a reload asked for while one runs, and nginx's rollback after WINCH.
 */
import { formatConfigError } from '../config/errors.js';
import type { Effect, MasterEvent, MasterState, ReloadOutcome, Step } from './state.js';
import { log, replyAll, unchanged } from './state.js';

type On<K extends MasterEvent['type']> = Extract<MasterEvent, { type: K }>;

export function onReload(state: MasterState, event: On<'reload'>): Step {
  const replies = event.reply !== undefined ? [event.reply] : [];
  if (state.phase !== 'running') return reloadRefused(state, replies);
  if (state.reload) return reloadQueued(state, replies);
  if (state.winched && state.upgrade) return rollbackAfterWinch(state, replies);
  return {
    state: { ...state, reload: { stage: 'loading', generation: null, replies } },
    effects: [log('info', 'reloading configuration'), { type: 'notify', fields: { RELOADING: '1', STATUS: 'reloading' } }, { type: 'loadConfig' }],
  };
}

function reloadRefused(state: MasterState, replies: readonly number[]): Step {
  return { state, effects: [log('warn', `reload ignored: master is ${state.phase}`), ...replyAll(replies, { ok: false, errors: [`master is ${state.phase}`] })] };
}

/** Reloads asked for while one runs are done once, after it, with all their replies. */
function reloadQueued(state: MasterState, replies: readonly number[]): Step {
  return {
    state: { ...state, queuedReload: [...(state.queuedReload ?? []), ...replies] },
    effects: [log('info', 'reload queued behind the one in progress')],
  };
}

/**
 * nginx's rollback path: after WINCH, HUP restarts workers on the config we already have, without re-reading a
 * file that may now belong to the new binary.
 */
function rollbackAfterWinch(state: MasterState, replies: readonly number[]): Step {
  const id = state.nextGeneration;
  return {
    state: {
      ...state,
      winched: false,
      nextGeneration: id + 1,
      generations: [...state.generations, { id, config: state.config, status: 'starting' }],
      reload: { stage: 'starting', generation: id, replies },
    },
    effects: [log('info', 'restarting workers on the current config (rollback after WINCH)', { generation: id }), { type: 'startGeneration', id, config: state.config }],
  };
}

export function onConfigInvalid(state: MasterState, event: On<'configInvalid'>): Step {
  if (state.reload?.stage !== 'loading') return unchanged(state);
  const lines = event.errors.map(formatConfigError);
  const effects: Effect[] = [
    log('error', 'reload failed: invalid configuration, nothing changed', { errors: lines }),
    { type: 'notify', fields: { READY: '1', STATUS: 'reload failed: invalid configuration' } },
  ];
  return finishReload(state, { ok: false, errors: lines }, effects);
}

export function onConfigLoaded(state: MasterState, event: On<'configLoaded'>): Step {
  if (state.reload?.stage !== 'loading') return unchanged(state);
  const id = state.nextGeneration;
  return {
    state: {
      ...state,
      nextGeneration: id + 1,
      generations: [...state.generations, { id, config: event.config, status: 'starting' }],
      reload: { ...state.reload, stage: 'starting', generation: id },
    },
    effects: [log('info', 'configuration valid, starting a new generation', { generation: id }), { type: 'startGeneration', id, config: event.config }],
  };
}

/** The reload in progress ended: count it once, answer every request waiting for it, then run the queued one. */
export function finishReload(state: MasterState, outcome: ReloadOutcome, effects: Effect[]): Step {
  const replies = state.reload?.replies ?? [];
  effects.push(
    outcome.ok ? { type: 'settled', operation: 'reload', outcome: 'ok' } : { type: 'settled', operation: 'reload', outcome: 'failed', reason: outcome.errors.join('; ') },
    ...replyAll(replies, outcome),
  );
  const next: MasterState = { ...state, reload: null };
  const queued = next.queuedReload;
  if (!queued) return { state: next, effects };
  if (next.phase !== 'running') {
    effects.push(...replyAll(queued, { ok: false, errors: [`master is ${next.phase}`] }));
    return { state: { ...next, queuedReload: null }, effects };
  }
  const step = onReload({ ...next, queuedReload: null }, { type: 'reload' });
  const reload = step.state.reload ? { ...step.state.reload, replies: queued } : null;
  return { state: { ...step.state, reload }, effects: [...effects, ...step.effects] };
}
