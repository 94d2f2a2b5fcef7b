/** @module The pid of the running master, from a pid file, checked three ways before anyone signals it. */
import { checkMaster } from '../control/master-process.js';
import { processAlive, readPidFile } from '../control/pid-file.js';

export type Out = (line: string) => void;

/** The master's pid, or null after saying why there is none (the caller exits 3). */
export function runningMaster(pidFile: string, err: Out): number | null {
  const read = readPidFile(pidFile);
  if (!read.ok) {
    err(`baton: ${read.reason}`);
    return null;
  }
  if (!processAlive(read.pid)) {
    err(`baton: pid file ${pidFile} names process ${read.pid}, which is not running`);
    return null;
  }
  const check = checkMaster(read.pid);
  if (check.kind === 'other') {
    const cmd = check.cmdline.length > 120 ? `${check.cmdline.slice(0, 117)}...` : check.cmdline;
    err(`baton: pid file ${pidFile} names process ${read.pid}, which is not a baton master (it runs: ${cmd}); the pid file is stale: nothing was signalled`);
    return null;
  }
  return read.pid;
}
