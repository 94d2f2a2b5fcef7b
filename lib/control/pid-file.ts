/**
 * @module The pid file: atomic write, read, remove-if-ours, and the `.oldbin` rename of a binary upgrade.
 */
import fs from 'node:fs';
import path from 'node:path';

export const OLDBIN_SUFFIX = '.oldbin';

export function oldbinPath(pidFile: string): string {
  return pidFile + OLDBIN_SUFFIX;
}

/** Write `pid` atomically (temp file + rename), so a reader never sees a half-written file. Mode 0644. */
export function writePidFile(pidFile: string, pid: number = process.pid): void {
  fs.mkdirSync(path.dirname(pidFile), { recursive: true });
  const tmp = `${pidFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
  fs.renameSync(tmp, pidFile);
}

export type PidRead = { ok: true; pid: number } | { ok: false; reason: string };

export function readPidFile(pidFile: string): PidRead {
  let text: string;
  try {
    text = fs.readFileSync(pidFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? `pid file ${pidFile} does not exist (is baton running?)` : `cannot read pid file ${pidFile}: ${(err as Error).message}` };
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return { ok: false, reason: `pid file ${pidFile} holds no pid: ${JSON.stringify(text.trim().slice(0, 40))}` };
  return { ok: true, pid };
}

/** Remove the file only if it still names `pid`: a newer master may have taken it over. */
export function removePidFileIfOurs(file: string, pid: number = process.pid): void {
  const read = readPidFile(file);
  if (read.ok && read.pid === pid) {
    try { fs.unlinkSync(file); } catch { /* already gone */ }
  }
}

/** `pid_file` → `pid_file.oldbin`, atomically. Returns false (and leaves things alone) when it fails. */
export function renameToOldbin(pidFile: string): boolean {
  try {
    fs.renameSync(pidFile, oldbinPath(pidFile));
    return true;
  } catch {
    return false;
  }
}

/** `pid_file.oldbin` → `pid_file`, when a new master failed or was rolled back. */
export function restoreFromOldbin(pidFile: string): boolean {
  try {
    fs.renameSync(oldbinPath(pidFile), pidFile);
    return true;
  } catch {
    return false;
  }
}

/** Is a process with this pid alive (and signalable by us)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
