/**
 * @module The master's listening sockets, keyed by normalized address. The master binds them (or adopts them
 * from an old master or systemd) but never accepts on them: workers do, on fds they inherit. Because a socket
 * is kept by key across reloads and handed over on upgrade, every generation accepts from the same kernel
 * socket and the same accept queue: nothing queued is lost when one generation leaves.
 */
import net from 'node:net';
import os from 'node:os';
import type { Address } from '../config/types.js';

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
  /** The address actually bound (the real port when the config says port 0). */
  readonly bound: string;
}

function errnoName(code: number): string {
  const name = Object.entries(os.constants.errno).find(([, v]) => v === -code)?.[0];
  return name ?? `errno ${code}`;
}

function boundAddress(handle: RawHandle, fallback: string): string {
  const out: Record<string, unknown> = {};
  if (handle.getsockname(out) !== 0 || typeof out.port !== 'number') return fallback;
  return out.family === 'IPv6' ? `[${out.address}]:${out.port}` : `${out.address}:${out.port}`;
}

export class ListenerRegistry {
  readonly #entries = new Map<string, ListenerEntry>();

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
      this.#entries.set(key, { key, handle, bound: boundAddress(handle, key) });
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
      const bound = boundAddress(handle, '');
      if (!bound) {
        problems.push(`activated fd ${fd} is not a TCP socket; ignored`);
        handle.close();
        continue;
      }
      this.#entries.set(bound, { key: bound, handle, bound });
    }
    return problems;
  }

  /** Bind every address not held yet. Returns a message per failure; opened ones stay (closeUnused cleans up). */
  ensure(addresses: readonly Address[]): string[] {
    const problems: string[] = [];
    for (const a of addresses) {
      if (this.#entries.has(a.key)) continue;
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

  /** Remove an entry without closing it (the admin server owns and closes its handle). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  /** Close the sockets no one needs any more. */
  closeExcept(keep: ReadonlySet<string>): string[] {
    const closed: string[] = [];
    for (const [key, entry] of this.#entries) {
      if (keep.has(key)) continue;
      entry.handle.close();
      this.#entries.delete(key);
      closed.push(key);
    }
    return closed;
  }

  closeAll(): void {
    this.closeExcept(new Set());
  }
}
