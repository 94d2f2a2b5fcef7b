/**
 * @module The one place that says who the client of a request is. The peer is the address on the socket: on a
 * `proxy_protocol` listener the one its header carried, `unix:` on a unix listener (proxy-protocol.ts writes it there).
 * When the peer is one of `trusted_proxies`, X-Forwarded-For is believed, as nginx's realip module does with
 * `real_ip_recursive on`: the client is the rightmost address in it that is not itself trusted (the leftmost
 * one if all are); an entry that is not an address makes the whole header unbelieved, and the peer stays the
 * client. Compiled once per config; resolving allocates only the strings it returns.
 */
import { formatIp, inAnyBlock, parseBlock, parseIp, type Block } from '../util/cidr.js';

/** The client's address as the socket gives it (a PROXY header's, `unix:`, or the TCP peer). */
export function peerAddress(socket: { readonly remoteAddress?: string | undefined } | null | undefined): string {
  return displayAddress(socket?.remoteAddress);
}

/** `::ffff:10.0.0.1` (a v4 client on a dual-stack socket) is logged and forwarded as `10.0.0.1`, like nginx. */
export function displayAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.indexOf('.') !== -1 ? address.slice(7) : address;
}

const scratch = new Uint32Array(4);

export class TrustedProxies {
  readonly #blocks: readonly Block[];
  /** Set by `resolve`: the client, and the X-Forwarded-For to send (the received list up to the client). */
  client = '';
  forwarded = '';

  constructor(cidrs: readonly string[]) {
    this.#blocks = cidrs.map((c) => {
      const b = parseBlock(c);
      if (!b.ok) throw new Error(`trusted_proxies: ${b.message}`); // validated by the config loader
      return b.value;
    });
  }

  /** Is `address` (a peer as `peerAddress` gives it) a trusted proxy? */
  trusts(address: string): boolean {
    const family = parseIp(address, scratch);
    return family !== 0 && inAnyBlock(this.#blocks, family, scratch);
  }

  /**
   * Walk `xff` (the received X-Forwarded-For, every field joined with commas) from the right. True with `client`
   * and `forwarded` set when the header names a client; false when an entry is not an address (the header is
   * then not believed at all).
   */
  resolve(xff: string): boolean {
    let end = xff.length;
    let family: 0 | 4 | 6 = 0;
    let entryFrom = 0;
    let entryTo = 0;
    while (end > 0) {
      const comma = xff.lastIndexOf(',', end - 1);
      let from = comma + 1;
      let to = end;
      while (from < to && isSpace(xff.charCodeAt(from))) from++;
      while (to > from && isSpace(xff.charCodeAt(to - 1))) to--;
      family = parseEntry(xff, from, to);
      if (family === 0) return false;
      entryFrom = from;
      entryTo = to;
      if (!inAnyBlock(this.#blocks, family, scratch)) break;
      end = comma === -1 ? 0 : comma;
    }
    if (family === 0) return false; // an empty header
    this.client = formatIp(family, scratch);
    this.forwarded = entryFrom === 0 && entryTo === xff.length ? xff : xff.slice(0, entryTo);
    return true;
  }
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** An X-Forwarded-For entry: `1.2.3.4`, `2001:db8::1`, and with a port, `1.2.3.4:5678` or `[2001:db8::1]:5678`. */
function parseEntry(text: string, from: number, to: number): 0 | 4 | 6 {
  if (from >= to) return 0;
  if (text.charCodeAt(from) === 91 /* [ */) {
    const close = text.indexOf(']', from);
    if (close === -1 || close >= to) return 0;
    if (close + 1 !== to && !isPort(text, close + 1, to)) return 0;
    return parseIp(text, scratch, from + 1, close);
  }
  const colon = text.indexOf(':', from);
  if (colon !== -1 && colon < to) {
    const second = text.indexOf(':', colon + 1);
    if (second === -1 || second >= to) {
      // One colon: IPv4 with a port.
      if (!isPort(text, colon, to)) return 0;
      return parseIp(text, scratch, from, colon) === 4 ? 4 : 0;
    }
  }
  return parseIp(text, scratch, from, to);
}

/** `:digits` between from and to. */
function isPort(text: string, from: number, to: number): boolean {
  if (text.charCodeAt(from) !== 58 || to - from < 2 || to - from > 6) return false;
  for (let i = from + 1; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
