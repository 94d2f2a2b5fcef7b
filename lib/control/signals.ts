/**
 * @module THE signal table: CLI verb ↔ signal ↔ master event. The `-s` sender and the master's handlers both
 * read it, so the two vocabularies can never drift apart.
 */

export type MasterSignalEvent = 'reload' | 'reopen' | 'quit' | 'stop' | 'upgrade' | 'winch';

export interface SignalEntry {
  /** The `baton -s VERB` word, or null for signals operators send with kill only. */
  readonly verb: string | null;
  readonly signal: NodeJS.Signals;
  readonly event: MasterSignalEvent;
}

export const SIGNAL_TABLE: readonly SignalEntry[] = Object.freeze([
  { verb: 'reload', signal: 'SIGHUP', event: 'reload' },
  { verb: 'reopen', signal: 'SIGUSR1', event: 'reopen' },
  { verb: 'quit', signal: 'SIGQUIT', event: 'quit' },
  { verb: 'stop', signal: 'SIGTERM', event: 'stop' },
  { verb: 'upgrade', signal: 'SIGUSR2', event: 'upgrade' },
  { verb: null, signal: 'SIGINT', event: 'stop' },
  { verb: null, signal: 'SIGWINCH', event: 'winch' },
] as const);

export const SIGNAL_VERBS: readonly string[] = SIGNAL_TABLE.flatMap((e) => (e.verb ? [e.verb] : []));

export function signalForVerb(verb: string): NodeJS.Signals | undefined {
  return SIGNAL_TABLE.find((e) => e.verb === verb)?.signal;
}
