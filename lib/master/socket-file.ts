/**
 * @module Unix socket files, as the master handles them: is a file in the way a stale socket (a crash left it) or
 * one that some process still has bound; which path an inherited or activated unix socket has; its mode and owner.
 * Linux only where it reads /proc/net/unix (elsewhere a file in the way is never taken for stale).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** What /proc/net/unix tells about the sockets of this network namespace: path → bound, by socket inode. */
function unixTable(): { byPath: Set<string>; byInode: Map<number, string> } | null {
  let text: string;
  try {
    text = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return null;
  }
  const byPath = new Set<string>();
  const byInode = new Map<number, string>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]; a path may hold spaces: it is the rest of the line.
    const m = /^\S+:\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)(?: (.*))?$/.exec(line);
    if (m === null || m[2] === undefined || m[2] === '') continue;
    byPath.add(m[2]);
    byInode.set(Number(m[1]), m[2]);
  }
  return { byPath, byInode };
}

/**
 * Make room for a socket at `file`: nothing there, or a stale socket that no process has bound any more (removed
 * here). Returns why not otherwise: a file that is not a socket is never touched, nor one still bound.
 */
export function clearStaleSocket(file: string): { removed: boolean; problem: string | null } {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { removed: false, problem: null } : { removed: false, problem: `cannot inspect ${file}: ${code}` };
  }
  if (!st.isSocket()) return { removed: false, problem: `${file} exists and is not a socket` };
  const table = unixTable();
  if (table === null) return { removed: false, problem: `${file} exists (remove it if no process uses it)` };
  // Bound by someone (listening or not yet): another baton, or anything else. Ours are never bound twice.
  if (table.byPath.has(file)) return { removed: false, problem: `${file} is in use by another process` };
  try {
    fs.unlinkSync(file);
  } catch (err) {
    return { removed: false, problem: `cannot remove the stale socket ${file}: ${(err as NodeJS.ErrnoException).code}` };
  }
  return { removed: true, problem: null };
}

/** The path an inherited or activated unix socket is bound to (its fd's socket inode in /proc/net/unix). */
export function socketPathOf(fd: number): string | null {
  try {
    const ino = fs.fstatSync(fd).ino;
    return unixTable()?.byInode.get(ino) ?? null;
  } catch {
    return null;
  }
}

/** The identity of a socket file, to tell ours from one created since at the same path. */
export function fileIdentity(file: string): string | null {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Remove `file` if it is still the socket file whose identity was recorded. */
export function removeIfSame(file: string, identity: string | null): void {
  if (identity === null || fileIdentity(file) !== identity) return;
  try {
    fs.unlinkSync(file);
  } catch {
    /* gone already */
  }
}

const numeric = (s: string) => /^\d+$/.test(s);

/** `id` and `getent` ask NSS (files, LDAP...), as the master does for `user:`. Throws with a message. */
function resolveOwner(owner: string): { uid: number; gid: number } {
  const [user, group] = owner.split(':') as [string, string | undefined];
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  let uid: number;
  try {
    uid = numeric(user) ? Number(user) : Number(run('id', ['-u', user]));
  } catch {
    throw new Error(`unknown user "${user}"`);
  }
  if (group === undefined) {
    // chown(1)'s `user` alone keeps the group; `user:` with a group changes both. Keep it as chown does.
    return { uid, gid: -1 };
  }
  try {
    const gid = numeric(group) ? Number(group) : Number(run('getent', ['group', group]).split(':')[2]);
    if (!Number.isInteger(gid)) throw new Error();
    return { uid, gid };
  } catch {
    throw new Error(`unknown group "${group}"`);
  }
}

/** Give the socket file its mode and owner; a message on failure. The socket accepts nothing yet (no listen). */
export function applyFileSettings(file: string, mode: number | null, owner: string | null): string | null {
  try {
    if (owner !== null) {
      const { uid, gid } = resolveOwner(owner);
      fs.chownSync(file, uid, gid);
    }
    if (mode !== null) fs.chmodSync(file, mode);
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `cannot set ${mode !== null ? `mode ${mode.toString(8).padStart(4, '0')}` : ''}${mode !== null && owner !== null ? ' and ' : ''}${owner !== null ? `owner ${owner}` : ''} on ${file}: ${e.code ?? e.message}`;
  }
}
