/**
 * @module The top-level `compression` section: which codings baton may use (`br`, `gzip`, in order of preference),
 * for which media types, from which size. Absent: nothing is compressed. Routes opt out with `compress: false`.
 */
import { SIZE_FORMAT, parseSize } from '../../util/size.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { CompressionAlgorithm, CompressionConfig } from '../types.js';

const ALGORITHMS: readonly CompressionAlgorithm[] = ['br', 'gzip'];

/** Text formats that compress well; images, video and archives are compressed already. */
export const DEFAULT_TYPES: readonly string[] = [
  'text/*', 'application/json', 'application/javascript', 'application/xml', 'application/*+json', 'application/*+xml',
  'image/svg+xml', 'application/wasm',
];

const TOKEN = "[!#$%&'*.^_`|~0-9a-z-]+";
const TYPE_PATTERN = new RegExp(`^(?:${TOKEN}/${TOKEN}|${TOKEN}/\\*|${TOKEN}/\\*\\+${TOKEN})$`);
export const TYPE_FORMAT = 'a media type like text/html, text/* or application/*+json';

export function readCompression(r: Reader, cur: Cursor | undefined): CompressionConfig | null {
  if (cur === undefined) return null;
  const f = r.fields(cur, ['algorithms', 'types', 'min_size']);
  if (f === undefined) return null;
  return {
    algorithms: optional(f.get('algorithms'), (c) => readAlgorithms(r, c)) ?? ALGORITHMS,
    types: optional(f.get('types'), (c) => readTypes(r, c)) ?? DEFAULT_TYPES,
    minSize: optional(f.get('min_size'), (c) => r.parse(c, SIZE_FORMAT, parseSize)) ?? 1024,
  };
}

function readAlgorithms(r: Reader, cur: Cursor): CompressionAlgorithm[] | undefined {
  const out: CompressionAlgorithm[] = [];
  for (const item of r.list(cur, 'algorithm') ?? []) {
    const a = r.oneOf(item, ALGORITHMS);
    if (a === undefined) continue;
    if (out.includes(a)) r.fail(item.node, item.path, `${a} is listed twice`);
    else out.push(a);
  }
  return out.length > 0 ? out : undefined;
}

function readTypes(r: Reader, cur: Cursor): string[] | undefined {
  const out: string[] = [];
  for (const item of r.list(cur, 'media type') ?? []) {
    const text = r.string(item);
    if (text === undefined) continue;
    const type = text.trim().toLowerCase();
    if (!TYPE_PATTERN.test(type)) r.mismatch(item, TYPE_FORMAT);
    else if (!out.includes(type)) out.push(type);
  }
  return out.length > 0 ? out : undefined;
}
