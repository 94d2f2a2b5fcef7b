/** @module Parse durations (`250ms`, `30s`, `1.5s`, `5m`, `1h`) into milliseconds. */
import { expected, parsed, type Parsed } from './parsed.js';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * The longest timer Node honours: setTimeout() turns anything above 2^31-1 ms into 1 ms (with only a
 * warning), so a huge timeout would fire at once instead of never.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export const DURATION_FORMAT = 'a duration like 250ms, 30s, 5m or 1h';

/** A bare number is refused: `30` could mean seconds or milliseconds, and guessing wrong is silent. */
export function parseDuration(input: string | number): Parsed<number> {
  if (typeof input !== 'string') return expected(DURATION_FORMAT, input);
  const m = PATTERN.exec(input);
  if (m === null) return expected(DURATION_FORMAT, input);
  // Round away float noise first: 1.1 * 1000 is 1100.0000000000002, which is not a whole number.
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2]!]! * 1e6) / 1e6;
  if (!Number.isInteger(ms)) return expected('a whole number of milliseconds', input);
  if (ms > MAX_DURATION_MS) return expected('a duration of at most 596h', input);
  return parsed(ms);
}
