/**
 * @module Which uid/gid workers run as: `user:` resolved when the master runs as root (the master keeps root to
 * bind and to open files); nothing otherwise.
 */
import { execFileSync } from 'node:child_process';
import type { WorkerIdentity } from './worker-handle.js';

/** Throws when the user does not exist. Resolved per generation: a reload may change `user:`. */
export function workerIdentity(user: string | null): WorkerIdentity {
  if (!user || typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  return { uid: id('-u'), gid: id('-g') };
}
