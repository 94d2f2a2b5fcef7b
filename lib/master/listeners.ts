/**
 * @module The master's listening sockets, keyed by normalized address. The master binds them (or adopts them
 * from an old master or systemd) but never accepts on them: workers do, on fds they inherit. Because a socket
 * is kept by key across reloads and handed over on upgrade, every generation accepts from the same kernel
 * socket and the same accept queue: nothing queued is lost when one generation leaves. A unix socket's file is
 * created here (a stale one from a crash replaced), given its mode and owner, and removed only when the last
 * master that uses the socket lets it go.
 */
import os from 'node:os';
import type { Address } from '../config/types.js';
import { applyFileSettings, clearStaleSocket, fileIdentity, removeIfSame, socketPathOf } from './socket-file.js';
import { createServerHandle, type RawHandle } from '../util/internals.js';

export type { RawHandle };

/** The socket boundary: bind (or wrap an fd) without listening; a handle, or a negative errno. */
export type BindHandle = typeof createServerHandle;

/** What an operator should read next to the errno of a failed bind. */
const BIND_HINTS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE',
  EADDRNOTAVAIL: 'no such address on this host',
};

function bindProblem(key: string, errno: string): string {
  const hint = BIND_HINTS[errno];
  return `cannot listen on ${key}: ${errno}${hint ? ` (${hint})` : ''}`;
}

export interface ListenerEntry {
  readonly key: string;
  readonly handle: RawHandle;
  /** The address actually bound (the real port when the config says port 0; a unix socket's path). */
  readonly bound: string;
  /** A unix socket: its file, and what this master knows of it. */
  readonly file?: SocketFile;
}

interface SocketFile {
  readonly path: string;
  /** Bound here: libuv removes the file when the handle closes. Adopted: ours to remove. */
  readonly boundHere: boolean;
  /** dev:ino of the file when we got it, so that we never remove another one created since. */
  readonly identity: string | null;
  /** Mode and owner last applied (undefined: never, for an adopted socket). */
  mode?: number | null;
  owner?: string | null;
}

/** What a listener asks of its socket: the address, and for a unix socket the file's mode and owner. */
export interface SocketSpec {
  readonly address: Address;
  readonly mode?: number | null;
  readonly owner?: string | null;
}

function errnoName(code: number): string {
  const name = Object.entries(os.constants.errno).find(([, v]) => v === -code)?.[0];
  return name ?? `errno ${code}`;
}

function boundAddress(handle: RawHandle, fallback: string): string {
  const out: Record<string, unknown> = {};
  // A unix socket handle (Pipe) has no getsockname: its key names its path.
  if (typeof handle.getsockname !== 'function' || handle.getsockname(out) !== 0 || typeof out.port !== 'number') return fallback;
  return out.family === 'IPv6' ? `[${out.address}]:${out.port}` : `${out.address}:${out.port}`;
}

export class ListenerRegistry {
  readonly #entries = new Map<string, ListenerEntry>();

  /** Sockets bound here that a successor master still uses: never closed (closing would remove their file). */
  readonly #retained: RawHandle[] = [];
  /** Told what happened to a socket file that is not a failure (a stale one replaced). */
  onNotice: (msg: string) => void = () => {};

  constructor(private readonly bind: BindHandle = createServerHandle) {}

  get(key: string): ListenerEntry | undefined {
    return this.#entries.get(key);
  }

  entries(): ListenerEntry[] {
    return [...this.#entries.values()];
  }

  /** Take over fds inherited from an old master (or systemd), described as `{ key: fd }`. */
  adopt(fds: Readonly<Record<string, number>>): string[] {
    const problems: string[] = [];
    for (const [key, fd] of Object.entries(fds)) {
      const handle = this.bind(null, null, null, fd);
      if (typeof handle === 'number') {
        problems.push(`cannot adopt inherited socket ${key} (fd ${fd}): ${errnoName(handle)}`);
        continue;
      }
      const path = key.startsWith('unix:') ? key.slice('unix:'.length) : null;
      const file = path === null ? undefined : { path, boundHere: false, identity: fileIdentity(path) };
      this.#entries.set(key, { key, handle, bound: path ?? boundAddress(handle, key), ...(file ? { file } : {}) });
    }
    return problems;
  }

  /** Take over sockets systemd activated: each is keyed by the address it is bound to. */
  adoptActivated(fds: readonly number[]): string[] {
    const problems: string[] = [];
    for (const fd of fds) {
      const handle = this.bind(null, null, null, fd);
      if (typeof handle === 'number') {
        problems.push(`cannot adopt activated socket fd ${fd}: ${errnoName(handle)}`);
        continue;
      }
      const path = typeof handle.getsockname === 'function' ? null : socketPathOf(fd);
      if (path !== null) {
        const key = `unix:${path}`;
        // systemd's socket unit owns the file (it listens again after we stop): never ours to remove.
        this.#entries.set(key, { key, handle, bound: path, file: { path, boundHere: false, identity: null } });
        continue;
      }
      const bound = boundAddress(handle, '');
      if (!bound) {
        problems.push(`activated fd ${fd} is not a TCP or unix stream socket; ignored`);
        handle.close();
        continue;
      }
      this.#entries.set(bound, { key: bound, handle, bound });
    }
    return problems;
  }

  /**
   * Bind every address not held yet (and give a unix socket file the mode and owner asked, also when it is held
   * already: a reload may change them). Returns a message per failure; opened ones stay (closeUnused cleans up).
   */
  ensure(specs: readonly SocketSpec[]): string[] {
    const problems: string[] = [];
    for (const spec of specs) {
      const a = spec.address;
      const held = this.#entries.get(a.key);
      if (a.family === 'unix') {
        const problem = held ? this.#settle(held, spec) : this.#bindUnix(spec);
        if (problem !== null) problems.push(problem);
        continue;
      }
      if (held) continue;
      const handle = this.bind(a.host, a.port, a.family, undefined, 0);
      if (typeof handle === 'number') {
        problems.push(bindProblem(a.key, errnoName(handle)));
        continue;
      }
      // libuv defers EADDRINUSE from bind() to listen(), which only workers call: an fd left unbound would be
      // auto-bound to a random port by the worker's listen(). The bound port is the only trace of the failure.
      const out: Record<string, unknown> = {};
      if (handle.getsockname(out) !== 0 || out.port === 0 || (a.port !== 0 && out.port !== a.port)) {
        handle.close();
        problems.push(bindProblem(a.key, 'EADDRINUSE'));
        continue;
      }
      this.#entries.set(a.key, { key: a.key, handle, bound: boundAddress(handle, a.key) });
    }
    return problems;
  }

  /** Bind a unix socket (replacing a stale file), then its mode and owner: before any worker listens on it. */
  #bindUnix(spec: SocketSpec): string | null {
    const path = spec.address.host;
    const cleared = clearStaleSocket(path);
    if (cleared.problem !== null) return `cannot listen on ${spec.address.key}: ${cleared.problem}`;
    if (cleared.removed) this.onNotice(`removed a stale socket file left by a process that has gone: ${path}`);
    // (path, -1, -1) makes a Pipe; bind() errors come back at once for unix sockets.
    const handle = this.bind(path, -1, -1, undefined, 0);
    if (typeof handle === 'number') {
      const errno = errnoName(handle);
      // libuv reports a missing directory as EACCES too (as Windows would).
      const hint = errno === 'EACCES' ? ' (the directory must exist and be writable by the master)' : '';
      return `cannot listen on ${spec.address.key}: ${errno}${hint}`;
    }
    const entry: ListenerEntry = { key: spec.address.key, handle, bound: path, file: { path, boundHere: true, identity: fileIdentity(path) } };
    const problem = this.#settle(entry, spec);
    if (problem !== null) {
      handle.close();
      return problem;
    }
    this.#entries.set(entry.key, entry);
    return null;
  }

  #settle(entry: ListenerEntry, spec: SocketSpec): string | null {
    const file = entry.file;
    if (!file) return null;
    const mode = spec.mode ?? null;
    const owner = spec.owner ?? null;
    if (file.mode === mode && file.owner === owner) return null;
    const problem = applyFileSettings(file.path, mode, owner);
    if (problem !== null) return `${spec.address.key}: ${problem}`;
    file.mode = mode;
    file.owner = owner;
    return null;
  }

  /** Remove an entry without closing it (the admin server owns and closes its handle). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  /**
   * Close the sockets no one needs any more. `removeFiles`: this master is the last one using its sockets, so a
   * unix socket's file goes with it; false while another master (the old or new one of an upgrade) may share it.
   */
  closeExcept(keep: ReadonlySet<string>, removeFiles = true): string[] {
    const closed: string[] = [];
    for (const [key, entry] of this.#entries) {
      if (keep.has(key)) continue;
      this.#close(entry, removeFiles);
      this.#entries.delete(key);
      closed.push(key);
    }
    return closed;
  }

  closeAll(removeFiles = true): void {
    this.closeExcept(new Set(), removeFiles);
  }

  #close(entry: ListenerEntry, removeFiles: boolean): void {
    const file = entry.file;
    if (!file) return entry.handle.close();
    if (file.boundHere) {
      // libuv unlinks the path of a socket it bound when its handle closes: keep the handle open instead (the
      // process's exit closes the fd without touching the file).
      if (removeFiles) entry.handle.close();
      else this.#retained.push(entry.handle);
      return;
    }
    entry.handle.close();
    if (removeFiles) removeIfSame(file.path, file.identity);
  }
}
