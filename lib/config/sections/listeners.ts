/**
 * @module The `listeners` section: addresses (unique by canonical key; TCP or unix socket files), h2c, TLS, the
 * PROXY protocol, and a unix socket file's mode and owner.
 */
import { isScalar } from 'yaml';
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

const KEYS = ['listen', 'h2c', 'tls', 'proxy_protocol', 'mode', 'owner'];
/** `0660`, `660` or YAML's own octal `0o660`: permission bits only (no setuid, setgid or sticky bit). */
const MODE = /^(?:0o?)?([0-7]{3})$/;
/** `user` or `user:group`, names or numeric ids, as chown(1) takes them. */
const OWNER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;

export function readListeners(r: Reader, cur: Cursor): Listeners {
  const listeners: ListenerConfig[] = [];
  const owners: Owners = new Map();
  for (const item of r.list(cur, 'listener') ?? []) {
    const f = r.fields(item, KEYS);
    if (f === undefined) continue;
    const address = optional(f.required('listen'), (c) => claimAddress(r, c, owners, item.path));
    const h2cCur = f.get('h2c');
    const h2c = optional(h2cCur, (c) => r.bool(c)) ?? false;
    const tlsCur = f.get('tls');
    const tls = optional(tlsCur, (c) => readTls(r, c));
    if (h2cCur !== undefined && h2c && tlsCur !== undefined) r.fail(h2cCur.node, h2cCur.path, 'not allowed with tls: HTTP/2 over TLS is negotiated by ALPN');
    const proxyProtocol = optional(f.get('proxy_protocol'), (c) => r.bool(c)) ?? false;
    const unix = address?.family === 'unix';
    const mode = optional(f.get('mode'), (c) => (unixOnly(r, c, address) ? readMode(r, c) : undefined)) ?? null;
    const owner = optional(f.get('owner'), (c) => (unixOnly(r, c, address) ? readOwner(r, c) : undefined)) ?? null;
    if (address !== undefined) listeners.push({ address, h2c, tls: tls ?? null, proxyProtocol, mode: unix ? mode : null, owner: unix ? owner : null });
  }
  return { listeners, owners };
}

/** `mode` and `owner` concern a socket file: a TCP listener has none. */
function unixOnly(r: Reader, cur: Cursor, address: Address | undefined): boolean {
  if (address === undefined || address.family === 'unix') return true;
  r.fail(cur.node, cur.path, 'only for a unix: listener (a socket file)');
  return false;
}

function readMode(r: Reader, cur: Cursor): number | undefined {
  const node = cur.node;
  // Unquoted, YAML 1.2 reads 0660 as the decimal 660: the digits as written are what the operator meant.
  const text = isScalar(node) ? (typeof node.value === 'string' ? node.value : typeof node.value === 'number' ? node.source ?? String(node.value) : undefined) : undefined;
  const m = text === undefined ? null : MODE.exec(text);
  if (m === null) return r.mismatch(cur, 'permission bits in octal, like "0660"');
  return parseInt(m[1]!, 8);
}

function readOwner(r: Reader, cur: Cursor): string | undefined {
  const text = r.string(cur);
  if (text === undefined) return undefined;
  return OWNER.test(text) ? text : r.mismatch(cur, 'a user, or user:group');
}

/**
 * Read an address and record `owner` as its user. The master keeps one socket per address key, so a second user
 * of an address (listener or admin server) would silently share the first one's socket: an error on the second.
 * An address the kernel would refuse beside an earlier one (a wildcard on the same port) is an error too.
 */
export function claimAddress(r: Reader, cur: Cursor, owners: Owners, owner: string): Address | undefined {
  const address = r.parse(cur, ADDRESS_FORMAT, (input) => parseAddress(input, r.source.dir));
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
