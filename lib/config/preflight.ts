/**
 * @module What `-t` checks beyond the file itself, as `nginx -t` does: that `user:` exists, and that the pid file and
 * the log files can be created and written by whoever runs the check. A start checks only what `--daemon` needs
 * (no log on a terminal that is about to disappear): the master reports an unknown user or an unwritable pid file
 * itself, and an unwritable log never stops it (lines are kept and retried). Never run on reload or by
 * `-s`/`status`: those must work for an operator who cannot write /run/baton.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isAlias, isCollection, type Node } from 'yaml';
import { codeOrMessage } from '../util/error-text.js';
import type { Reader } from './reader.js';
import type { Config, LogDestination } from './types.js';

export interface PreflightOptions {
  /** `-t`: the user, the pid file and the log files, on this machine. */
  readonly machine: boolean;
  /** The master will detach (`--daemon`): the standard streams are gone once it has. */
  readonly daemon: boolean;
}

export function preflight(r: Reader, config: Config, opts: PreflightOptions): void {
  const fail = (keys: (string | number)[], message: string) => {
    const node = nodeAt(r, keys);
    const written = node.depth === keys.length;
    r.fail(node.node, keys.join('.'), written ? message : `${message} (this is the default: set ${keys.join('.')})`);
  };
  if (opts.machine && config.user !== null && !userExists(config.user)) fail(['user'], `no user "${config.user}" on this machine`);
  const pid = opts.machine ? cannotWrite(config.pidFile, false) : null;
  if (pid !== null) fail(['pid_file'], `cannot write ${config.pidFile}: ${pid}`);
  if (opts.machine) unixSockets(config, fail);
  const logs: [string, LogDestination | null][] = [['error', config.log.error], ['access', config.log.access]];
  for (const [key, dest] of logs) {
    if (dest?.kind === 'file') {
      const why = opts.machine ? cannotWrite(dest.path, true) : null;
      if (why !== null) fail(['log', key], `cannot write ${dest.path}: ${why}`);
    } else if (opts.daemon && dest !== null) {
      fail(['log', key], `${dest.kind} is gone once --daemon detaches: log to a file${key === 'access' ? ' (or off)' : ''}`);
    }
  }
}

/** A unix listener's directory must let the master create the socket; its `owner` must exist. */
function unixSockets(config: Config, fail: (keys: (string | number)[], message: string) => void): void {
  config.listeners.forEach((l, i) => {
    if (l.address.family !== 'unix') return;
    // The master creates the socket, not its directory.
    const dir = path.dirname(l.address.host);
    const why = fs.existsSync(dir) ? cannotWrite(l.address.host, false) : `no directory ${dir}`;
    if (why !== null) fail(['listeners', i, 'listen'], `cannot create ${l.address.host}: ${why}`);
    if (l.owner === null) return;
    const [user, group] = l.owner.split(':') as [string, string | undefined];
    if (!/^\d+$/.test(user) && !userExists(user)) fail(['listeners', i, 'owner'], `no user "${user}" on this machine`);
    if (group !== undefined && !/^\d+$/.test(group) && !groupExists(group)) fail(['listeners', i, 'owner'], `no group "${group}" on this machine`);
  });
}

function groupExists(group: string): boolean {
  try {
    execFileSync('getent', ['group', group], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** `id` asks NSS (files, LDAP, ...), as the master does when it drops privileges; no `id` at all is not our error. */
function userExists(user: string): boolean {
  try {
    execFileSync('id', ['-u', user], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Why `file` cannot be written (or created, with its missing directories), or null. `appendToExisting`: logs
 * append to the file itself; the pid file is replaced by a rename, so only its directory matters.
 */
export function cannotWrite(file: string, appendToExisting: boolean): string | null {
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) return `${file} is a directory`;
    if (appendToExisting) {
      try {
        fs.accessSync(file, fs.constants.W_OK);
      } catch (err) {
        return `the file is not writable (${codeOrMessage(err)})`;
      }
    }
  } catch (err) {
    if (codeOrMessage(err) !== 'ENOENT' && codeOrMessage(err) !== 'ENOTDIR') return codeOrMessage(err);
  }
  // The nearest directory that exists must let us create the rest.
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (err) {
      if ((codeOrMessage(err) === 'ENOENT' || codeOrMessage(err) === 'ENOTDIR') && dir !== path.dirname(dir)) continue;
      return `${dir}: ${codeOrMessage(err)}`;
    }
    if (!st.isDirectory()) return `${dir} is not a directory`;
    try {
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
      return null;
    } catch (err) {
      return `${dir} is not writable (${codeOrMessage(err)})`;
    }
  }
}

/** The node at `keys`, or the deepest one that exists (a default's position is then its parent's), and how deep. */
function nodeAt(r: Reader, keys: (string | number)[]): { node: Node; depth: number } {
  let node = r.source.doc.contents as Node;
  let depth = 0;
  for (const key of keys) {
    const here = isAlias(node) ? (node.resolve(r.source.doc) as Node | undefined) : node;
    const next = here && isCollection(here) ? (here.get(key, true) as Node | undefined) : undefined;
    if (next === undefined || next === null) break;
    node = next;
    depth++;
  }
  return { node, depth };
}
