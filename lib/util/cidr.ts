/**
 * @module IP addresses and CIDR blocks, IPv4 and IPv6: parsed into four 32-bit words (an IPv4-mapped IPv6
 * address, `::ffff:10.0.0.1`, is taken as the IPv4 address it carries), matched by prefix, printed in one
 * canonical form (RFC 5952). The config keeps blocks as canonical text; workers compile them once into `Block`s.
 * `parseIp` writes into a caller's scratch array and allocates nothing: the request path uses it.
 */
import { expected, parsed, type Parsed } from './parsed.js';

export const CIDR_FORMAT = 'an IP address or a CIDR block like 10.0.0.0/8 or 2001:db8::/32';

/** A CIDR block, compiled: compare an address's words with `words` under `bits` leading bits. */
export interface Block {
  readonly family: 4 | 6;
  readonly words: Uint32Array;
  readonly bits: number;
}

/**
 * Parse `text[from, to)` as an IPv4 or IPv6 address into `out` (IPv4: `out[0]`; IPv6: four words) and return
 * its family, or 0 when it is not an address. An IPv4-mapped IPv6 address comes back as IPv4. No zone ids.
 */
export function parseIp(text: string, out: Uint32Array, from = 0, to = text.length): 0 | 4 | 6 {
  if (to - from < 2) return 0;
  for (let i = from; i < to; i++) {
    if (text.charCodeAt(i) === 58 /* : */) return parseIpv6(text, out, from, to);
  }
  return parseIpv4(text, out, from, to) ? 4 : 0;
}

function parseIpv4(text: string, out: Uint32Array, from: number, to: number): boolean {
  let value = 0;
  let part = -1;
  let digits = 0;
  let parts = 0;
  for (let i = from; i <= to; i++) {
    const c = i === to ? 46 : text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (part === -1 || ++parts > 4) return false;
      value = value * 256 + part;
      part = -1;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return false;
    // No leading zeros: `010` is octal to some parsers and decimal to others.
    if (digits === 1 && part === 0) return false;
    part = part === -1 ? c - 48 : part * 10 + c - 48;
    if (++digits > 3 || part > 255) return false;
  }
  if (parts !== 4) return false;
  out[0] = value >>> 0;
  out[1] = out[2] = out[3] = 0;
  return true;
}

/** Groups of the IPv6 address being parsed (one parse at a time: nothing here is re-entrant). */
const groups = new Uint16Array(8);
const tail = new Uint32Array(4);

/** Sixteen-bit groups, `::` once, an optional dotted IPv4 tail. */
function parseIpv6(text: string, out: Uint32Array, from: number, to: number): 0 | 4 | 6 {
  let n = 0; // groups written
  let gap = -1; // number of groups before `::`
  let i = from;
  if (text.charCodeAt(i) === 58 /* : */) {
    if (text.charCodeAt(i + 1) !== 58) return 0;
    gap = 0;
    i += 2;
  }
  while (i < to) {
    if (n === 8) return 0;
    let j = i;
    let v = 0;
    while (j < to && j - i < 5) {
      const c = text.charCodeAt(j);
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (d === -1) break;
      v = v * 16 + d;
      j++;
    }
    if (j < to && text.charCodeAt(j) === 46 /* . */) {
      // A dotted IPv4 tail takes the last two groups.
      if (n > 6 || !parseIpv4(text, tail, i, to)) return 0;
      groups[n++] = tail[0]! >>> 16;
      groups[n++] = tail[0]! & 0xffff;
      break;
    }
    if (j === i || j - i > 4) return 0;
    groups[n++] = v;
    if (j === to) break;
    if (text.charCodeAt(j) !== 58) return 0;
    if (text.charCodeAt(j + 1) === 58 && j + 1 < to) {
      if (gap !== -1) return 0;
      gap = n;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === to) return 0; // a trailing single colon
    }
  }
  if (gap === -1 ? n !== 8 : n > 7) return 0;
  if (gap !== -1) {
    // The groups after `::` move to the end, zeros in between.
    const after = n - gap;
    for (let k = 0; k < after; k++) groups[7 - k] = groups[n - 1 - k]!;
    for (let k = gap; k < 8 - after; k++) groups[k] = 0;
  }
  for (let k = 0; k < 4; k++) out[k] = ((groups[2 * k]! << 16) | groups[2 * k + 1]!) >>> 0;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!;
    out[1] = out[2] = out[3] = 0;
    return 4;
  }
  return 6;
}

/** Does the address in `words` (of `family`) lie in `block`? */
export function inBlock(block: Block, family: 4 | 6, words: Uint32Array): boolean {
  if (block.family !== family) return false;
  let bits = block.bits;
  for (let k = 0; k < 4 && bits > 0; k++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((words[k]! & mask) >>> 0) !== block.words[k]) return false;
  }
  return true;
}

/** Any of `blocks`. */
export function inAnyBlock(blocks: readonly Block[], family: 4 | 6, words: Uint32Array): boolean {
  for (let i = 0; i < blocks.length; i++) if (inBlock(blocks[i]!, family, words)) return true;
  return false;
}

/** `outer` contains every address of `inner`. */
export function covers(outer: Block, inner: Block): boolean {
  return outer.family === inner.family && outer.bits <= inner.bits && inBlock(outer, inner.family, inner.words);
}

/**
 * A config value: an address (a block of one) or `address/bits`, its host bits zero. IPv4-mapped IPv6 blocks
 * of at least 96 bits become IPv4 blocks (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
 */
export function parseBlock(input: string | number): Parsed<Block> {
  const text = String(input).trim();
  const slash = text.indexOf('/');
  const words = new Uint32Array(4);
  const family = parseIp(text, words, 0, slash === -1 ? text.length : slash);
  if (family === 0) return expected(CIDR_FORMAT, input);
  const written6 = text.slice(0, slash === -1 ? text.length : slash).indexOf(':') !== -1;
  let bits = family === 4 ? 32 : 128;
  if (slash !== -1) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return expected(CIDR_FORMAT, input);
    bits = Number(b);
    // An IPv4-mapped address written as IPv6 counts its prefix in IPv6 bits.
    if (family === 4 && written6) {
      if (bits < 96 || bits > 128) return { ok: false, message: `expected a prefix of 96 to 128 bits for an IPv4-mapped block, got ${JSON.stringify(text)}` };
      bits -= 96;
    }
    if (bits > (family === 4 ? 32 : 128)) return { ok: false, message: `expected a prefix of at most ${family === 4 ? 32 : 128} bits, got ${JSON.stringify(text)}` };
  }
  const block: Block = { family, words, bits };
  const base = new Uint32Array(4);
  maskInto(block, base);
  for (let k = 0; k < 4; k++) {
    if (base[k] !== words[k]) return { ok: false, message: `${JSON.stringify(text)} has host bits set: the block is ${formatBlock({ family, words: base, bits })}` };
  }
  return parsed(block);
}

function maskInto(block: Block, out: Uint32Array): void {
  let bits = block.bits;
  for (let k = 0; k < 4; k++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    out[k] = (block.words[k]! & mask) >>> 0;
  }
}

/** Canonical text of a block: `10.0.0.0/8`, `2001:db8::/32`, a single address without its length. */
export function formatBlock(block: Block): string {
  const ip = formatIp(block.family, block.words);
  return block.bits === (block.family === 4 ? 32 : 128) ? ip : `${ip}/${block.bits}`;
}

/** An address as text: dotted IPv4, or IPv6 as RFC 5952 writes it (lower case, the longest zero run as `::`). */
export function formatIp(family: 4 | 6, words: Uint32Array): string {
  if (family === 4) {
    const w = words[0]!;
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
  }
  const g: number[] = [];
  for (let k = 0; k < 4; k++) g.push(words[k]! >>> 16, words[k]! & 0xffff);
  let bestAt = -1;
  let bestLen = 1; // a single zero group is not shortened (RFC 5952 §4.2.2)
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestLen = j - i;
      bestAt = i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestAt === -1) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}
