/** @module Parse host names as routes and SNI entries match them: `example.com` or `*.example.com`, lower-cased. */
import { expected, parsed, type Parsed } from './parsed.js';

export const HOST_PATTERN_FORMAT = 'a host name like example.com or *.example.com';

const LABEL = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
const PATTERN = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

/** Host names compare case-insensitively, so they are stored lower-cased and matched against lower-cased input. */
export function parseHostPattern(input: string | number): Parsed<string> {
  const text = String(input).toLowerCase();
  // A port is the likeliest mistake; say so rather than "expected a host name".
  if (/:\d*$/.test(text)) return expected('a host name without a port', input);
  if (!PATTERN.test(text)) return expected(HOST_PATTERN_FORMAT, input);
  return parsed(text);
}
