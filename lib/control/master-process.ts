/**
 * @module Does a pid name a baton master? A pid file outlives a crash, and the kernel reuses pids: before the CLI
 * signals the pid it read (USR1's default action kills an unrelated process), it checks /proc/PID/cmdline.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Arguments that make bin/baton a command-line tool rather than a master (`baton -s quit` is not a master). */
const NOT_A_MASTER = new Set(['-t', '--test', '-s', '--signal', 'reload', 'upgrade', 'status', '-v', '--version', '-h', '--help', '--daemon', '-d']);

/**
 * A master runs bin/baton: `node [node options] /path/bin/baton [-c FILE]` (started directly, by systemd, by the
 * --daemon launcher or as the new master of an upgrade), or shows a `baton…` process title.
 */
export function looksLikeMaster(argv: readonly string[]): boolean {
  if (argv.length === 0) return false;
  const script = path.basename(argv[0]!).startsWith('baton') ? 0 : argv.findIndex((a, i) => i > 0 && path.basename(a) === 'baton');
  return script >= 0 && !argv.slice(script + 1).some((a) => NOT_A_MASTER.has(a));
}

export type MasterCheck =
  | { readonly kind: 'master' }
  | { readonly kind: 'other'; readonly cmdline: string }
  /** No /proc (not Linux) or the process left meanwhile: nothing to check against. */
  | { readonly kind: 'unknown' };

export function checkMaster(pid: number, proc = '/proc'): MasterCheck {
  let raw: string;
  try {
    raw = fs.readFileSync(path.join(proc, String(pid), 'cmdline'), 'utf8');
  } catch {
    return { kind: 'unknown' };
  }
  const argv = raw.split('\0');
  if (argv.at(-1) === '') argv.pop();
  if (looksLikeMaster(argv)) return { kind: 'master' };
  // A kernel thread or a zombie has an empty command line.
  return { kind: 'other', cmdline: argv.length ? argv.join(' ') : '(no command line)' };
}
