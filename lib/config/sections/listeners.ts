/** @module The `listeners` section: addresses (unique by canonical key), h2c, and TLS. */
import { ADDRESS_FORMAT, parseAddress } from '../../util/address.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import { collision } from '../overlap.js';
import type { Address, ListenerConfig } from '../types.js';
import { readTls } from './tls.js';

/** Address key → the address and the path of what claimed it (a listener, or the admin server). */
export type Owners = Map<string, { readonly owner: string; readonly address: Address }>;

export interface Listeners {
  readonly listeners: ListenerConfig[];
  /** For the admin address check. */
  readonly owners: Owners;
}

export function readListeners(r: Reader, cur: Cursor): Listeners {
  const listeners: ListenerConfig[] = [];
  const owners: Owners = new Map();
  for (const item of r.list(cur, 'listener') ?? []) {
    const f = r.fields(item, ['listen', 'h2c', 'tls']);
    if (f === undefined) continue;
    const address = optional(f.required('listen'), (c) => claimAddress(r, c, owners, item.path));
    const h2cCur = f.get('h2c');
    const h2c = optional(h2cCur, (c) => r.bool(c)) ?? false;
    const tlsCur = f.get('tls');
    const tls = optional(tlsCur, (c) => readTls(r, c));
    if (h2cCur !== undefined && h2c && tlsCur !== undefined) r.fail(h2cCur.node, h2cCur.path, 'not allowed with tls: HTTP/2 over TLS is negotiated by ALPN');
    if (address !== undefined) listeners.push({ address, h2c, tls: tls ?? null });
  }
  return { listeners, owners };
}

/**
 * Read an address and record `owner` as its user. The master keeps one socket per address key, so a second user
 * of an address (listener or admin server) would silently share the first one's socket: an error on the second.
 * An address the kernel would refuse beside an earlier one (a wildcard on the same port) is an error too.
 */
export function claimAddress(r: Reader, cur: Cursor, owners: Owners, owner: string): Address | undefined {
  const address = r.parse(cur, ADDRESS_FORMAT, parseAddress);
  if (address === undefined) return undefined;
  const first = owners.get(address.key);
  if (first !== undefined) return r.fail(cur.node, cur.path, `${address.key} is already used by ${first.owner}`);
  for (const other of owners.values()) {
    const why = collision(address, other.address);
    if (why !== null) return r.fail(cur.node, cur.path, `${address.key} cannot be bound beside ${other.address.key} (${other.owner}): ${why}`);
  }
  owners.set(address.key, { owner, address });
  return address;
}
