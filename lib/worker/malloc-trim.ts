/**
 * @module glibc's `malloc_trim(0)`, through the small Node-API module the build makes (native/malloc-trim.c), for a
 * worker that has gone quiet (quiet-gc.ts). glibc's `free()` returns memory to the kernel only from the top of its
 * heap, and a load leaves the top held by a few live allocations: after 3 000 concurrent 1 MiB uploads a Node 24
 * worker kept 91 MiB of freed memory in its main arena, RSS 154 MiB; one `malloc_trim(0)` took another worker of the
 * same run from 143 to 80 MiB. Loaded on first use, not at start-up: a worker that is never quiet never pays for it.
 */
import { createRequire } from 'node:module';

/** Where the build puts it: dist/native, two levels above both dist/lib/worker and dist/bundle/worker. */
const MODULE = '../../native/malloc-trim.node';

type Trim = () => number;

let loaded: Trim | null | undefined;

/**
 * The trim function, or null where the build made none (no C compiler or headers, not Linux) or it does not load
 * (another architecture or C library than the one it was built on). Asked once.
 */
export function mallocTrim(): Trim | null {
  if (loaded !== undefined) return loaded;
  try {
    const mod = createRequire(import.meta.url)(MODULE) as { trim?: unknown };
    loaded = typeof mod.trim === 'function' ? (mod.trim as Trim) : null;
  } catch {
    loaded = null;
  }
  return loaded;
}
