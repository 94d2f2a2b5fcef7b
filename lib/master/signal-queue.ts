/**
 * @module Signal handlers that only enqueue: each signal of the table becomes a master event. No decisions here.
 */
import { SIGNAL_TABLE } from '../control/signals.js';
import type { MasterEvent } from './state.js';

export function installSignalQueue(enqueue: (e: MasterEvent) => void, opts: { onTerminal: boolean }): void {
  for (const entry of SIGNAL_TABLE) {
    // A terminal sends WINCH on every resize: honour it only when detached from one, as nginx does.
    if (entry.event === 'winch' && opts.onTerminal) {
      process.on(entry.signal, () => {});
      continue;
    }
    process.on(entry.signal, () => enqueue({ type: entry.event }));
  }
}
