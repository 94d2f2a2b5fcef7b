/**
 * @module After a reload, the master's own settings follow the new config, as nginx's do: its error log (a new
 * level is applied in place; a new destination is opened and the replaced one closed, so reloads leak no
 * descriptor) and its pid file (written at the new path, the old one removed).
 */
import type { Config, LogDestination } from '../config/types.js';
import { createLogs, type OwnedLogs } from '../log/logger.js';

export interface PidFileMoves {
  writePidFile(path: string): void;
  removePidFileIfOurs(path: string): void;
}

export interface MoveInput {
  readonly previous: Config;
  readonly next: Config;
  readonly logs: OwnedLogs;
  /** The pid file that names this master now. */
  readonly pidFile: string;
  /** During an upgrade the pid file belongs to the upgrade choreography: it is not moved. */
  readonly upgrading: boolean;
  readonly world: PidFileMoves;
}

const sameDestination = (a: LogDestination, b: LogDestination) => a.kind === b.kind && (a.kind !== 'file' || (b.kind === 'file' && a.path === b.path));

export function moveMasterSettings(input: MoveInput): { logs: OwnedLogs; pidFile: string } {
  const { previous, next } = input;
  let logs = input.logs;
  if (!sameDestination(previous.log.error, next.log.error)) {
    logs = createLogs(next.log, { role: 'master' });
    input.logs.error.info({ log: next.log.error }, 'error log moves as the new configuration says');
    input.logs.close();
  } else if (previous.log.level !== next.log.level) {
    logs.error.level = next.log.level;
  }
  let pidFile = input.pidFile;
  if (previous.pidFile !== next.pidFile && !input.upgrading && pidFile === previous.pidFile) {
    try {
      input.world.writePidFile(next.pidFile);
      input.world.removePidFileIfOurs(previous.pidFile);
      pidFile = next.pidFile;
    } catch (err) {
      logs.error.error({ err: (err as Error).message, pidFile: next.pidFile }, 'cannot move the pid file; keeping the old one');
    }
  }
  return { logs, pidFile };
}
