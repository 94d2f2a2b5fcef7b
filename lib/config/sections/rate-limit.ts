/**
 * @module A route's `rate_limit`: `{rate: 100/s, burst: 50, key: client_ip | header:NAME}`. The limit is for the
 * whole daemon (the master keeps the buckets: lib/master/rate-buckets.ts); a route's buckets are known by its
 * label and this spec, so that a reload keeping both keeps its buckets.
 */
import http from 'node:http';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { RateLimitConfig } from '../types.js';
import { expected, parsed, type Parsed } from '../../util/parsed.js';

const KEYS = ['rate', 'burst', 'key'];
const RATE = /^(\d+)\/(s|m|h)$/;
const PER_SECOND: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };
const MAX_RATE = 1_000_000;
const MAX_BURST = 1_000_000;

export function readRateLimit(r: Reader, cur: Cursor): RateLimitConfig | undefined {
  const f = r.fields(cur, KEYS);
  if (f === undefined) return undefined;
  const rate = optional(f.required('rate'), (c) => readRate(r, c));
  const burst = optional(f.get('burst'), (c) => r.integer(c, 0, MAX_BURST, `an integer from 0 to ${MAX_BURST}`)) ?? 0;
  const key = optional(f.get('key'), (c) => readKey(r, c)) ?? 'client_ip';
  if (rate === undefined) return undefined;
  return { rate: rate.text, perSecond: rate.perSecond, burst, key, spec: `${rate.text} burst ${burst} ${key}` };
}

const RATE_FORMAT = 'a rate like 100/s, 30/m or 500/h';

function readRate(r: Reader, cur: Cursor): { text: string; perSecond: number } | undefined {
  return r.parse(cur, RATE_FORMAT, parseRate);
}

function parseRate(input: string | number): Parsed<{ text: string; perSecond: number }> {
  const m = typeof input === 'string' ? RATE.exec(input) : null;
  if (m === null) return expected(RATE_FORMAT, input);
  const n = Number(m[1]);
  if (n < 1 || n > MAX_RATE) return expected(`from 1 to ${MAX_RATE} requests per ${m[2]}`, input);
  return parsed({ text: input as string, perSecond: n / PER_SECOND[m[2]!]! });
}

/** `client_ip` (the client as the access log names it), or `header:NAME` (lower-cased). */
function readKey(r: Reader, cur: Cursor): string | undefined {
  const text = r.string(cur);
  if (text === undefined) return undefined;
  if (text === 'client_ip') return text;
  if (text.startsWith('header:')) {
    const name = text.slice('header:'.length);
    try {
      http.validateHeaderName(name);
      return `header:${name.toLowerCase()}`;
    } catch {
      return r.fail(cur.node, cur.path, `invalid header name ${JSON.stringify(name)}`);
    }
  }
  return r.mismatch(cur, 'client_ip or header:NAME');
}
