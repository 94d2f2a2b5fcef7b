/**
 * @module The master's boundary with the world outside its process: child processes, pid files, systemd, the
 * config file, stderr and exit. The runtime goes through it for every such act, so unit tests give it fakes.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { LoadResult } from '../config/types.js';
import { removePidFileIfOurs, restoreFromOldbin, writePidFile } from '../control/pid-file.js';
import type { NewMasterToOld } from '../ipc/messages.js';
import { workerIdentity } from './identity.js';
import type { ListenerEntry } from './listeners.js';
import { notify } from './systemd.js';
import { spawnNewMaster, tellOldMaster } from './upgrade.js';
import type { SpawnProcess, WorkerIdentity } from './worker-handle.js';

/** Everything the runtime does to the world outside the process, in one place a test can replace. */
export interface MasterBoundary {
  spawnWorker?: SpawnProcess;
  /** `onMessage` gets the descriptor a hand-off message carries as `handle`. */
  spawnNewMaster(listeners: readonly ListenerEntry[], firstGeneration: number, onMessage: (msg: NewMasterToOld, handle?: unknown) => void): ChildProcess;
  tellOldMaster(msg: NewMasterToOld): void;
  writePidFile(path: string): void;
  /** Throws (with the errno) when it cannot. */
  renamePidFile(from: string, to: string): void;
  restorePidFile(path: string): boolean;
  removePidFileIfOurs(path: string): void;
  notify(fields: Record<string, string>, log: (msg: string) => void): Promise<void>;
  loadConfig(file: string): LoadResult;
  workerIdentity(user: string | null): WorkerIdentity;
  /** Where a master that cannot start says so, besides its log (the terminal that started it). */
  stderr(line: string): void;
  exit(code: number): void;
}

export const REAL_WORLD: MasterBoundary = {
  spawnNewMaster,
  tellOldMaster,
  writePidFile: (p) => writePidFile(p),
  renamePidFile: (from, to) => fs.renameSync(from, to),
  restorePidFile: restoreFromOldbin,
  removePidFileIfOurs: (p) => removePidFileIfOurs(p),
  notify,
  loadConfig,
  workerIdentity,
  stderr: (line) => {
    try { process.stderr.write(line + '\n'); } catch { /* a closed terminal */ }
  },
  exit: (code) => process.exit(code),
};

