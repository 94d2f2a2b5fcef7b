/**
 * @module The PROXY protocol header (HAProxy's spec, versions 1 and 2), parsed from the first bytes of a
 * connection: who the client is, as the load balancer in front of us saw it. Pure: bytes in, a verdict out.
 */
import { isIP } from 'node:net';

/** The client a header names; null fields mean "keep the connection's own peer" (LOCAL, UNKNOWN, UNSPEC). */
export interface ProxiedPeer {
  readonly address: string;
  readonly port: number | undefined;
  readonly family: 'IPv4' | 'IPv6' | 'unix';
}

export type HeaderVerdict =
  /** More bytes are needed. */
  | { readonly kind: 'partial' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `length`: bytes the header took; `peer` null: use the connection's own peer. */
  | { readonly kind: 'header'; readonly length: number; readonly peer: ProxiedPeer | null };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 header, CRLF included (spec §2.1). */
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Addresses (216 bytes for unix) plus TLVs we skip: load balancers send a few dozen bytes of them. */
const V2_MAX_BODY = 216 + 4096;

const PARTIAL: HeaderVerdict = Object.freeze({ kind: 'partial' });
const invalid = (reason: string): HeaderVerdict => ({ kind: 'invalid', reason });

/** Does `seen` start like `prefix` (as far as both go)? */
function startsLike(seen: Buffer, prefix: Buffer): boolean {
  const n = Math.min(seen.length, prefix.length);
  return seen.subarray(0, n).equals(prefix.subarray(0, n));
}

/** The header at the start of `seen`, if complete. */
export function parseProxyHeader(seen: Buffer): HeaderVerdict {
  if (seen.length === 0) return PARTIAL;
  if (startsLike(seen, V2_SIGNATURE)) return seen.length < V2_SIGNATURE.length ? PARTIAL : parseV2(seen);
  if (startsLike(seen, V1_PREFIX)) return seen.length < V1_PREFIX.length ? PARTIAL : parseV1(seen);
  return invalid('no PROXY protocol header');
}

function parseV1(seen: Buffer): HeaderVerdict {
  const end = seen.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return seen.length >= V1_MAX ? invalid('v1 header longer than 107 bytes') : PARTIAL;
  if (end + 2 > V1_MAX) return invalid('v1 header longer than 107 bytes');
  const line = seen.toString('latin1', 0, end);
  const fields = line.split(' ');
  const proto = fields[1];
  // "UNKNOWN": the sender could not tell (spec: the rest of the line is ignored); the peer stays ours.
  if (proto === 'UNKNOWN') return { kind: 'header', length: end + 2, peer: null };
  if ((proto !== 'TCP4' && proto !== 'TCP6') || fields.length !== 6) return invalid('malformed v1 header');
  const family = proto === 'TCP4' ? 4 : 6;
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  if (isIP(src) !== family || isIP(dst) !== family) return invalid(`v1 header: addresses are not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const port = v1Port(sport);
  if (port === -1 || v1Port(dport) === -1) return invalid('v1 header: malformed port');
  return { kind: 'header', length: end + 2, peer: { address: src, port, family: family === 4 ? 'IPv4' : 'IPv6' } };
}

function v1Port(text: string): number {
  if (!/^\d{1,5}$/.test(text)) return -1;
  const n = Number(text);
  return n <= 65535 ? n : -1;
}

function parseV2(seen: Buffer): HeaderVerdict {
  if (seen.length < 16) return PARTIAL;
  const verCmd = seen[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 header: unsupported version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command > 1) return invalid(`v2 header: unsupported command ${command}`);
  const length = seen.readUInt16BE(14);
  if (length > V2_MAX_BODY) return invalid(`v2 header: ${length} bytes of addresses and TLVs, over ${V2_MAX_BODY}`);
  const total = 16 + length;
  if (seen.length < total) return PARTIAL;
  // LOCAL: the balancer's own connection (a health check): the peer is the balancer itself.
  if (command === 0) return { kind: 'header', length: total, peer: null };
  const family = seen[13]! >> 4;
  const transport = seen[13]! & 0x0f;
  if (transport > 2) return invalid(`v2 header: unsupported transport ${transport}`);
  switch (family) {
    case 0: // UNSPEC: keep the connection's own addresses (spec §2.2)
      return { kind: 'header', length: total, peer: null };
    case 1:
      if (length < 12) return invalid('v2 header: short IPv4 addresses');
      return { kind: 'header', length: total, peer: { address: `${seen[16]}.${seen[17]}.${seen[18]}.${seen[19]}`, port: seen.readUInt16BE(24), family: 'IPv4' } };
    case 2:
      if (length < 36) return invalid('v2 header: short IPv6 addresses');
      return { kind: 'header', length: total, peer: { address: formatIPv6(seen, 16), port: seen.readUInt16BE(48), family: 'IPv6' } };
    case 3:
      if (length < 216) return invalid('v2 header: short unix addresses');
      return { kind: 'header', length: total, peer: UNIX_PEER };
    default:
      return invalid(`v2 header: unsupported address family ${family}`);
  }
}

/** How a client on a unix socket is named in logs and X-Forwarded-For, as nginx does. */
export const UNIX_PEER: ProxiedPeer = Object.freeze({ address: 'unix:', port: undefined, family: 'unix' });

/** 16 bytes as Node writes an IPv6 peer: lower-case, the longest run of zero groups compressed, v4-mapped dotted. */
export function formatIPv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt === -1) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}
