/**
 * @module The master's decisions about its own life and its generations: start-up (the first generation, the
 * pid file), generations becoming ready, failing and leaving, WINCH, QUIT, TERM, USR1. Pure: (state, event) →
 * (state, effects), one named function per event.
 */
import { EXIT } from '../control/exit-codes.js';
import type { MasterEvent, MasterState, Phase, Step, Effect, GenerationState } from './state.js';
import { log, replyAll, unchanged, withStatus } from './state.js';
import { finishReload } from './reduce-reload.js';

type On<K extends MasterEvent['type']> = Extract<MasterEvent, { type: K }>;

const leaving = (phase: Phase) => phase === 'quitting' || phase === 'stopping';

/** The master may leave once it stops and nothing it runs is left. */
function exitWhenEmpty(state: MasterState, effects: Effect[]): Step {
  if (leaving(state.phase) && state.generations.length === 0) {
    // The pid file (or .oldbin) is removed by the exit effect, only where it still names this master.
    effects.push(log('info', 'master exiting'), { type: 'exit', code: state.exitCode });
  }
  return { state, effects };
}

/** Could not start, with workers already running: say why, drain them, exit 4 once they have gone. */
function startFailed(state: MasterState, reason: string, effects: Effect[]): Step {
  effects.push(log('error', `cannot start: ${reason}`), { type: 'startupFailed', reason });
  let next: MasterState = { ...state, phase: 'quitting', exitCode: EXIT.STARTUP_FAILED };
  for (const g of state.generations) {
    if (g.status !== 'draining') effects.push({ type: 'drainGeneration', id: g.id });
    next = withStatus(next, g.id, 'draining');
  }
  return exitWhenEmpty(next, effects);
}

export function onGenerationReady(state: MasterState, event: On<'generationReady'>): Step {
  const gen = state.generations.find((g) => g.id === event.id);
  if (!gen || gen.status !== 'starting') return unchanged(state);
  if (leaving(state.phase)) return readyWhileLeaving(state, gen);
  if (state.phase === 'starting') return firstGenerationServes(state, gen);
  return generationTakesOver(state, gen);
}

/** A quit arrived while this generation started: it leaves with the rest. */
function readyWhileLeaving(state: MasterState, gen: GenerationState): Step {
  const effect: Effect = state.phase === 'quitting' ? { type: 'drainGeneration', id: gen.id } : { type: 'stopGeneration', id: gen.id, signal: 'SIGTERM' };
  return { state: withStatus(state, gen.id, 'draining'), effects: [effect] };
}

/** The pid file is written only once workers serve, and ready is announced only once it is written. */
function firstGenerationServes(state: MasterState, gen: GenerationState): Step {
  return {
    state: { ...withStatus(state, gen.id, 'active'), config: gen.config },
    effects: [{ type: 'closeUnusedListeners' }, { type: 'writePidFile' }],
  };
}

/** The new generation serves; every older one that still accepts now drains. */
function generationTakesOver(state: MasterState, gen: GenerationState): Step {
  const effects: Effect[] = [];
  let next: MasterState = { ...withStatus(state, gen.id, 'active'), config: gen.config };
  for (const old of next.generations) {
    if (old.id !== gen.id && old.status !== 'draining') {
      next = withStatus(next, old.id, 'draining');
      effects.push({ type: 'drainGeneration', id: old.id });
    }
  }
  effects.push({ type: 'closeUnusedListeners' });
  if (gen.config !== state.config) effects.push({ type: 'applyMasterSettings', previous: state.config });
  effects.push(log('info', 'generation ready', { generation: gen.id }));
  if (state.reload && state.reload.generation === gen.id) {
    effects.push({ type: 'notify', fields: { READY: '1', STATUS: `serving, generation ${gen.id}` } });
    return finishReload(next, { ok: true, generation: gen.id }, effects);
  }
  return { state: next, effects };
}

export function onPidFileWritten(state: MasterState): Step {
  if (state.phase !== 'starting') return unchanged(state);
  const serving = state.generations.find((g) => g.status === 'active');
  return {
    state: { ...state, phase: 'running' },
    effects: [log('info', 'serving', { generation: serving?.id }), { type: 'announceReady' }],
  };
}

/** At start-up, a pid file that cannot be written is fatal: a master nobody can signal must not say it is ready. */
export function onPidFileFailed(state: MasterState, event: On<'pidFileFailed'>): Step {
  if (state.phase !== 'starting') return unchanged(state);
  return startFailed(state, event.reason, []);
}

export function onAdminFailed(state: MasterState, event: On<'adminFailed'>): Step {
  if (state.phase === 'starting') return startFailed(state, event.reason, []);
  return { state, effects: [log('error', `admin listener unavailable: ${event.reason}`)] };
}

export function onGenerationFailed(state: MasterState, event: On<'generationFailed'>): Step {
  const gen = state.generations.find((g) => g.id === event.id);
  if (!gen) return unchanged(state);
  const next: MasterState = { ...state, generations: state.generations.filter((g) => g.id !== gen.id) };
  const effects: Effect[] = [];
  if (state.phase === 'starting' && gen.status === 'starting') {
    // Its workers are killed already (generation.ts): nothing to wait for.
    effects.push(log('error', `cannot start: ${event.reason}`, { generation: gen.id }), { type: 'startupFailed', reason: event.reason });
    effects.push({ type: 'exit', code: EXIT.STARTUP_FAILED });
    return { state: { ...next, phase: 'stopping', exitCode: EXIT.STARTUP_FAILED }, effects };
  }
  if (gen.status !== 'starting') {
    effects.push(log('error', `generation failed: ${event.reason}`, { generation: gen.id }));
    return exitWhenEmpty(next, effects);
  }
  effects.push(log('error', `reload failed, the running generation keeps serving: ${event.reason}`, { generation: gen.id }), { type: 'closeUnusedListeners' });
  if (state.reload && state.reload.generation === gen.id) {
    effects.push({ type: 'notify', fields: { READY: '1', STATUS: 'reload failed' } });
    return finishReload(next, { ok: false, errors: [event.reason] }, effects);
  }
  return exitWhenEmpty(next, effects);
}

export function onGenerationGone(state: MasterState, event: On<'generationGone'>): Step {
  if (!state.generations.some((g) => g.id === event.id)) return unchanged(state);
  const next: MasterState = { ...state, generations: state.generations.filter((g) => g.id !== event.id) };
  return exitWhenEmpty(next, [log('info', 'generation left', { generation: event.id }), { type: 'closeUnusedListeners' }]);
}

export function onReopen(state: MasterState): Step {
  return { state, effects: [log('info', 'reopening log files'), { type: 'reopenLogs' }] };
}

/** WINCH: this master's workers drain, it keeps its sockets; reloads in progress or queued are answered. */
export function onWinch(state: MasterState): Step {
  if (state.phase !== 'running') return unchanged(state);
  const effects: Effect[] = [];
  let next: MasterState = { ...state, winched: true };
  for (const g of state.generations) {
    if (g.status !== 'draining') {
      next = withStatus(next, g.id, 'draining');
      effects.push({ type: 'drainGeneration', id: g.id });
    }
  }
  effects.push(log('info', 'WINCH: workers drain, the master keeps its listening sockets'));
  if (state.reload) effects.push({ type: 'settled', operation: 'reload', outcome: 'failed', reason: 'interrupted by WINCH' });
  const waiting = [...(state.reload?.replies ?? []), ...(state.queuedReload ?? [])];
  effects.push(...replyAll(waiting, { ok: false, errors: ['interrupted by WINCH'] }));
  return { state: { ...next, reload: null, queuedReload: null }, effects };
}

/** QUIT drains and TERM stops every generation; the master exits once they have gone. */
export function onQuitOrStop(state: MasterState, event: On<'quit'> | On<'stop'>): Step {
  if (state.phase === 'stopping' || (state.phase === 'quitting' && event.type === 'quit')) return unchanged(state);
  const phase: Phase = event.type === 'quit' ? 'quitting' : 'stopping';
  const effects: Effect[] = [log('info', event.type === 'quit' ? 'graceful stop' : 'fast stop')];
  if (state.reload) effects.push({ type: 'settled', operation: 'reload', outcome: 'failed', reason: `master is ${phase}` });
  const waiting = [...(state.reload?.replies ?? []), ...(state.queuedReload ?? [])];
  effects.push(...replyAll(waiting, { ok: false, errors: [`master is ${phase}`] }));
  // With a new master started (ready or not yet), the service does not stop: that master is its future.
  if (!state.upgrade) effects.push({ type: 'notify', fields: { STOPPING: '1' } });
  let next: MasterState = { ...state, phase, reload: null, queuedReload: null };
  for (const g of state.generations) {
    if (event.type === 'stop') effects.push({ type: 'stopGeneration', id: g.id, signal: 'SIGTERM' });
    else if (g.status !== 'draining') effects.push({ type: 'drainGeneration', id: g.id });
    next = withStatus(next, g.id, 'draining');
  }
  if (event.type === 'stop') effects.push({ type: 'armStopDeadline' });
  return exitWhenEmpty(next, effects);
}

export function onStopDeadline(state: MasterState): Step {
  const effects: Effect[] = state.generations.map((g) => ({ type: 'stopGeneration', id: g.id, signal: 'SIGKILL' }) as const);
  if (effects.length) effects.push(log('warn', 'workers did not stop in time: killed'));
  return { state, effects };
}
