/**
 * @module Which listen addresses the kernel refuses to bind side by side. Linux gives a wildcard address its port
 * on every address of the family, and the master binds `[::]` dual-stack (libuv sets IPV6_V6ONLY to 0 whatever
 * the sysctl says), so `[::]:80` also takes port 80 on every IPv4 address. Binding the second fails with
 * EADDRINUSE at start, or fails a reload: `-t` says so first.
 */
import type { Address } from './types.js';

/** An IPv4-mapped IPv6 address (`::ffff:7f00:1`, as the address parser writes it) as dotted IPv4, else null. */
function mappedV4(host: string): string | null {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (m === null) return null;
  const [hi, lo] = [parseInt(m[1]!, 16), parseInt(m[2]!, 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** What the kernel sees: IPv4-mapped addresses are IPv4 addresses. */
function effective(a: Address): { family: 4 | 6 | 'unix'; host: string } {
  const v4 = a.family === 6 ? mappedV4(a.host) : null;
  return v4 === null ? { family: a.family, host: a.host } : { family: 4, host: v4 };
}

/** Why `a` and `b` cannot both be bound, or null when they can. Same-key duplicates are reported elsewhere. */
export function collision(a: Address, b: Address): string | null {
  // Two unix listeners collide only on the same path, a duplicate key (reported elsewhere).
  if (a.port <= 0 || a.port !== b.port || a.key === b.key) return null;
  const [x, y] = [effective(a), effective(b)];
  for (const [w, other] of [[x, y], [y, x]] as const) {
    if (w.family === 6 && w.host === '::') return `[::]:${a.port} takes port ${a.port} on every IPv6 and IPv4 address (dual-stack)`;
    if (w.family === 4 && w.host === '0.0.0.0' && other.family === 4) return `0.0.0.0:${a.port} takes port ${a.port} on every IPv4 address`;
  }
  if (x.family === y.family && x.host === y.host) return `both are ${x.family === 4 ? x.host : `[${x.host}]`}:${a.port}`;
  return null;
}
