/**
 * @module When workers drop privileges, their log files must already exist and belong to them: the master
 * (still root) creates them and hands them over before starting workers and before telling workers to reopen,
 * as nginx does on USR1.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/types.js';
import type { WorkerIdentity } from './worker-handle.js';

export function prepareLogFiles(config: Config, identity: WorkerIdentity): string[] {
  if (identity.uid === undefined) return [];
  const problems: string[] = [];
  for (const dest of [config.log.error, config.log.access]) {
    if (!dest || dest.kind !== 'file') continue;
    try {
      fs.mkdirSync(path.dirname(dest.path), { recursive: true });
      const fd = fs.openSync(dest.path, 'a', 0o640);
      try {
        fs.fchownSync(fd, identity.uid, identity.gid ?? -1);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      problems.push(`cannot prepare log file ${dest.path} for user ${config.user}: ${(err as Error).message}`);
    }
  }
  return problems;
}
