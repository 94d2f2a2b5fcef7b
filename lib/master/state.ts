/**
 * @module The master's vocabulary: its state, the events that reach it (signals, the admin listener, children,
 * timers, and the outcome of every effect that can fail) and the effects it asks for. The decisions are in
 * reduce.ts, one function per event; runtime.ts performs the effects and turns their outcomes into events.
 */
import type { Config, ConfigError, LogLevel } from '../config/types.js';

/** The one place a generation's status is kept: generation.ts and /status read it from here. */
export type GenerationStatus = 'starting' | 'active' | 'draining';

export interface GenerationState {
  readonly id: number;
  readonly config: Config;
  readonly status: GenerationStatus;
}

/**
 * starting: until the first generation serves and the pid file names this master; running; quitting: draining
 * everything, then exit; stopping: workers got TERM, then exit.
 */
export type Phase = 'starting' | 'running' | 'quitting' | 'stopping';

export interface UpgradeState {
  /**
   * renaming: pid file → .oldbin; spawning: the new master starts; ready: it said so (both serve);
   * abandoned: it was not ready in time and is being killed (a late "ready" is refused).
   */
  readonly stage: 'renaming' | 'spawning' | 'ready' | 'abandoned';
  readonly pid: number | null;
  /** Why it failed, as the new master said (or the deadline); logged and kept for /status once it has exited. */
  readonly failure: string | null;
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
  /** Reload requests that arrived while another ran: done next, together, with these replies. */
  readonly queuedReload: readonly number[] | null;
  readonly upgrade: UpgradeState | null;
  /** This master is a new binary and the master that spawned it is still alive. */
  readonly oldMasterAlive: boolean;
  /** WINCH drained our workers; the master keeps its sockets. */
  readonly winched: boolean;
  /** The exit code once everything has left: 4 when the master stops because it could not start. */
  readonly exitCode: number;
}

export type ReloadOutcome = { readonly ok: true; readonly generation: number } | { readonly ok: false; readonly errors: readonly string[] };

export type MasterEvent =
  // operators: signals and POST /reload
  | { readonly type: 'reload'; readonly reply?: number }
  | { readonly type: 'reopen' }
  | { readonly type: 'upgrade' }
  | { readonly type: 'winch' }
  | { readonly type: 'quit' }
  | { readonly type: 'stop' }
  // timers
  | { readonly type: 'stopDeadline' }
  | { readonly type: 'upgradeDeadline' }
  // outcomes of effects
  | { readonly type: 'configLoaded'; readonly config: Config }
  | { readonly type: 'configInvalid'; readonly errors: readonly ConfigError[] }
  | { readonly type: 'pidFileWritten' }
  | { readonly type: 'pidFileFailed'; readonly reason: string }
  | { readonly type: 'oldbinRenamed' }
  | { readonly type: 'oldbinRenameFailed'; readonly reason: string }
  | { readonly type: 'adminFailed'; readonly reason: string }
  // generations
  | { readonly type: 'generationReady'; readonly id: number }
  | { readonly type: 'generationFailed'; readonly id: number; readonly reason: string }
  | { readonly type: 'generationGone'; readonly id: number }
  // the new master, during an upgrade this master started
  | { readonly type: 'newMasterSpawned'; readonly pid: number }
  | { readonly type: 'newMasterSpawnFailed'; readonly reason: string }
  | { readonly type: 'newMasterFailed'; readonly pid: number; readonly reason: string }
  | { readonly type: 'newMasterReady'; readonly pid: number }
  | { readonly type: 'newMasterExited'; readonly pid: number; readonly code: number | null; readonly signal: string | null }
  // the old master, when this master is the new binary
  | { readonly type: 'adminHandedOver' }
  | { readonly type: 'oldMasterGone' };

export type Operation = 'reload' | 'upgrade';
export type Outcome = 'ok' | 'failed' | 'rolled_back';

export type Effect =
  | { readonly type: 'log'; readonly level: Extract<LogLevel, 'info' | 'warn' | 'error'>; readonly msg: string; readonly fields?: Readonly<Record<string, unknown>> }
  | { readonly type: 'loadConfig' }
  | { readonly type: 'startGeneration'; readonly id: number; readonly config: Config }
  | { readonly type: 'drainGeneration'; readonly id: number }
  | { readonly type: 'stopGeneration'; readonly id: number; readonly signal: 'SIGTERM' | 'SIGKILL' }
  | { readonly type: 'closeUnusedListeners' }
  | { readonly type: 'reopenLogs' }
  | { readonly type: 'reply'; readonly id: number; readonly outcome: ReloadOutcome }
  /** Reported back as pidFileWritten or pidFileFailed. */
  | { readonly type: 'writePidFile' }
  /** A reload changed the config: the master's own settings (its log, its pid file) follow. */
  | { readonly type: 'applyMasterSettings'; readonly previous: Config }
  | { readonly type: 'announceReady' }
  /** Reported back as oldbinRenamed or oldbinRenameFailed. */
  | { readonly type: 'renamePidToOldbin' }
  | { readonly type: 'restorePidFromOldbin' }
  /** Reported back as newMasterSpawned or newMasterSpawnFailed. */
  | { readonly type: 'spawnNewMaster' }
  | { readonly type: 'armUpgradeDeadline' }
  | { readonly type: 'disarmUpgradeDeadline' }
  | { readonly type: 'killNewMaster'; readonly pid: number }
  /** Serve the admin listener (no-op when it is served already or not configured); adminFailed if it cannot. */
  | { readonly type: 'openAdmin' }
  /** Stop serving it and tell the new master to take it: one master answers at a time. */
  | { readonly type: 'releaseAdmin' }
  | { readonly type: 'armStopDeadline' }
  | { readonly type: 'notify'; readonly fields: Readonly<Record<string, string>> }
  /** A reload or upgrade ended: counted in /metrics; an upgrade failure is kept for /status. */
  | { readonly type: 'settled'; readonly operation: Operation; readonly outcome: Outcome; readonly reason?: string }
  /** This master cannot start: say why where someone will read it (its stderr, the old master). */
  | { readonly type: 'startupFailed'; readonly reason: string }
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
    exitCode: 0,
  };
  // A new binary waits for its old master to hand the admin listener over (or to leave): one answers at a time.
  const effects: Effect[] = opts.oldMasterAlive ? [] : [{ type: 'openAdmin' }];
  effects.push({ type: 'startGeneration', id: first, config });
  return { state, effects };
}

// ---- small builders shared by the reducers ---------------------------------------------------------------------

export const log = (level: Extract<LogLevel, 'info' | 'warn' | 'error'>, msg: string, fields?: Record<string, unknown>): Effect =>
  ({ type: 'log', level, msg, ...(fields ? { fields } : {}) });

export function withStatus(state: MasterState, id: number, status: GenerationStatus): MasterState {
  return { ...state, generations: state.generations.map((g) => (g.id === id ? { ...g, status } : g)) };
}

export function replyAll(replies: readonly number[], outcome: ReloadOutcome): Effect[] {
  return replies.map((id) => ({ type: 'reply', id, outcome }) as const);
}

export const unchanged = (state: MasterState): Step => ({ state, effects: [] });
