/** @module Parse sizes (`512`, `64k`, `64kb`, `1m`, `2g`, any case) into bytes; units are powers of 1024, as in nginx. */
import { expected, parsed, type Parsed } from './parsed.js';

const UNIT_BYTES: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const PATTERN = /^(\d+(?:\.\d+)?)([kmg]?)b?$/;

export const SIZE_FORMAT = 'a size like 512, 64k, 1m or 2g';

export function parseSize(input: string | number): Parsed<number> {
  const text = typeof input === 'number' ? String(input) : input.toLowerCase();
  const m = PATTERN.exec(text);
  if (m === null) return expected(SIZE_FORMAT, input);
  const bytes = Number(m[1]) * UNIT_BYTES[m[2]!]!;
  if (!Number.isInteger(bytes)) return expected('a whole number of bytes', input);
  if (!Number.isSafeInteger(bytes)) return expected(SIZE_FORMAT, input);
  return parsed(bytes);
}
