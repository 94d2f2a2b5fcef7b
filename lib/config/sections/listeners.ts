/** @module The `listeners` section: addresses (unique by canonical key), h2c, and TLS. */
import { ADDRESS_FORMAT, parseAddress } from '../../util/address.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { ListenerConfig } from '../types.js';
import { readTls } from './tls.js';

export interface Listeners {
  readonly listeners: ListenerConfig[];
  /** Address key → path of the listener that has it, for the admin address check. */
  readonly owners: ReadonlyMap<string, string>;
}

export function readListeners(r: Reader, cur: Cursor): Listeners {
  const listeners: ListenerConfig[] = [];
  const owners = new Map<string, string>();
  for (const item of r.list(cur, 'listener') ?? []) {
    const f = r.fields(item, ['listen', 'h2c', 'tls']);
    if (f === undefined) continue;
    const listenCur = f.required('listen');
    const address = optional(listenCur, (c) => r.parse(c, ADDRESS_FORMAT, parseAddress));
    const owner = address && owners.get(address.key);
    // One kernel socket per address: a second listener on it would never receive a connection.
    if (address !== undefined && owner !== undefined) r.fail(listenCur!.node, listenCur!.path, `${address.key} is already used by ${owner}`);
    else if (address !== undefined) owners.set(address.key, item.path);

    const h2cCur = f.get('h2c');
    const h2c = optional(h2cCur, (c) => r.bool(c)) ?? false;
    const tlsCur = f.get('tls');
    const tls = optional(tlsCur, (c) => readTls(r, c));
    if (h2c && tlsCur !== undefined) r.fail(h2cCur!.node, h2cCur!.path, 'not allowed with tls: HTTP/2 over TLS is negotiated by ALPN');
    if (address !== undefined) listeners.push({ address, h2c, tls: tls ?? null });
  }
  return { listeners, owners };
}
