/**
 * @module The key `balance: hash` hashes, read from a request (`hash_key`): the client's address, the path
 * (without its query string), a header's value, or a cookie's. An absent header or cookie gives '' (the ring
 * then spreads such requests instead of sending them all to one target).
 */
import type { HashKey } from '../../config/types.js';

export function hashKeyOf(key: HashKey, rawHeaders: readonly string[], client: string, target: string): string {
  switch (key.kind) {
    case 'client_ip': return client;
    case 'path': {
      const q = target.indexOf('?');
      return q === -1 ? target : target.slice(0, q);
    }
    case 'header': return headerValue(rawHeaders, key.name);
    case 'cookie': return cookieValue(rawHeaders, key.name);
  }
}

/** Every field of that name joined as one value (as a recipient may combine them, RFC 9110 §5.3). */
function headerValue(raw: readonly string[], lower: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== lower.length || raw[i]!.toLowerCase() !== lower) continue;
    out = out === '' ? raw[i + 1]! : `${out}, ${raw[i + 1]!}`;
  }
  return out;
}

/** The first cookie called `name` in any Cookie field (HTTP/2 may split them), value as sent. */
function cookieValue(raw: readonly string[], name: string): string {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 6 || raw[i]!.toLowerCase() !== 'cookie') continue;
    for (const pair of raw[i + 1]!.split(';')) {
      const eq = pair.indexOf('=');
      if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
    }
  }
  return '';
}
