/**
 * @module CIDR lists in the config: top-level `trusted_proxies`, and a route's `allow` / `deny`, checked in the
 * order written (nginx's order) with a rule that an earlier rule of the other kind hides refused: it could never
 * match, which is never what its writer meant.
 */
import { isSeq } from 'yaml';
import { CIDR_FORMAT, covers, formatBlock, parseBlock, type Block } from '../../util/cidr.js';
import { parsed, type Parsed } from '../../util/parsed.js';
import type { Cursor, Fields, Reader } from '../reader.js';
import type { AccessRule } from '../types.js';

interface Written {
  readonly block: Block;
  readonly text: string;
  readonly cur: Cursor;
}

/** `all` is every IPv4 and every IPv6 address. */
const ALL: Block[] = ['0.0.0.0/0', '::/0'].map((a) => (parseBlock(a) as { value: Block }).value);

function mapParsed<T, U>(p: Parsed<T>, f: (v: T) => U): Parsed<U> {
  return p.ok ? parsed(f(p.value)) : p;
}

/** A list of addresses and blocks (`all` too when `allowAll`), as canonical text, in order. */
function readBlocks(r: Reader, cur: Cursor, allowAll: boolean): Written[] {
  const out: Written[] = [];
  for (const item of r.list(cur) ?? []) {
    const what = allowAll ? `${CIDR_FORMAT}, or all` : CIDR_FORMAT;
    const blocks = r.parse<Block[]>(item, what, (v) => (allowAll && v === 'all' ? parsed(ALL) : mapParsed(parseBlock(v), (b) => [b])));
    for (const block of blocks ?? []) out.push({ block, text: formatBlock(block), cur: item });
  }
  return out;
}

/** Top-level `trusted_proxies`: canonical blocks. */
export function readTrustedProxies(r: Reader, cur: Cursor | undefined): string[] {
  if (cur === undefined) return [];
  return readBlocks(r, cur, false).map((w) => w.text);
}

/** A route's `allow` and `deny`, in the order they are written; null when the route has neither. */
export function readAccess(r: Reader, f: Fields): AccessRule[] | null {
  const allowCur = f.get('allow');
  const denyCur = f.get('deny');
  if (allowCur === undefined && denyCur === undefined) return null;
  const lists: { allow: boolean; cur: Cursor }[] = [];
  if (allowCur !== undefined) lists.push({ allow: true, cur: allowCur });
  if (denyCur !== undefined) lists.push({ allow: false, cur: denyCur });
  // The key written first is checked first.
  lists.sort((a, b) => (a.cur.node.range?.[0] ?? 0) - (b.cur.node.range?.[0] ?? 0));
  const rules: (Written & { allow: boolean })[] = [];
  for (const { allow, cur } of lists) {
    const written = readBlocks(r, cur, true);
    if (isSeq(cur.node) && cur.node.items.length === 0) {
      r.fail(cur.node, cur.path, `expected at least one address or block (${allow ? 'an empty allow list would deny everyone: write deny: [all]' : 'an empty deny list denies no one'})`);
    }
    for (const w of written) {
      const earlier = rules.find((e) => e.allow !== allow && covers(e.block, w.block));
      if (earlier !== undefined) {
        r.fail(w.cur.node, w.cur.path, `${w.text} can never match: ${earlier.allow ? 'allow' : 'deny'} ${earlier.text} (${earlier.cur.path}) is checked first and covers it; rules are checked in the order written`);
        continue;
      }
      rules.push({ ...w, allow });
    }
  }
  return rules.map((w) => ({ allow: w.allow, cidr: w.text }));
}
