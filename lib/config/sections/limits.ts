/**
 * @module The `limits` section: what a client may send and how long it may take, for every listener. Routes
 * may override `max_body_size`. Defaults follow nginx where nginx is sensible (`client_body_timeout 60s`,
 * `keepalive_requests 1000`) and are tighter where a Node process pays for idle clients (`header_timeout`).
 */
import { DURATION_FORMAT, parseDuration } from '../../util/duration.js';
import { SIZE_FORMAT, parseSize } from '../../util/size.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { ClientLimits } from '../types.js';
import { DEFAULT_LIMITS } from '../defaults.js';

export { DEFAULT_LIMITS };

const KEYS = ['max_header_size', 'max_headers', 'max_body_size', 'header_timeout', 'body_timeout', 'keepalive_timeout', 'keepalive_requests', 'http2_max_concurrent_streams', 'underscores_in_headers', 'request_buffering', 'request_buffer_size'];

/** Node's parser needs room for at least a request line and a Host header; 1m is far past any real client. */
const MIN_HEADER_SIZE = 1024;
const MAX_HEADER_SIZE = 1024 * 1024;

export function readLimits(r: Reader, cur: Cursor | undefined): ClientLimits {
  if (cur === undefined) return DEFAULT_LIMITS;
  const f = r.fields(cur, KEYS);
  if (f === undefined) return DEFAULT_LIMITS;
  const d = DEFAULT_LIMITS;
  return {
    maxHeaderSize: optional(f.get('max_header_size'), (c) => readSize(r, c, MIN_HEADER_SIZE, MAX_HEADER_SIZE)) ?? d.maxHeaderSize,
    maxHeaders: optional(f.get('max_headers'), (c) => r.integer(c, 1, 10_000, 'an integer from 1 to 10000')) ?? d.maxHeaders,
    maxBodySize: optional(f.get('max_body_size'), (c) => readBodySize(r, c)) ?? d.maxBodySize,
    headerTimeout: optional(f.get('header_timeout'), (c) => readDuration(r, c, false)) ?? d.headerTimeout,
    bodyTimeout: optional(f.get('body_timeout'), (c) => readDuration(r, c, true)) ?? d.bodyTimeout,
    keepaliveTimeout: optional(f.get('keepalive_timeout'), (c) => readDuration(r, c, false)) ?? d.keepaliveTimeout,
    keepaliveRequests: optional(f.get('keepalive_requests'), (c) => r.integer(c, 0, Number.MAX_SAFE_INTEGER, 'an integer >= 0 (0 = no limit)')) ?? d.keepaliveRequests,
    http2MaxConcurrentStreams: optional(f.get('http2_max_concurrent_streams'), (c) => r.integer(c, 1, 10_000, 'an integer from 1 to 10000')) ?? d.http2MaxConcurrentStreams,
    underscoresInHeaders: optional(f.get('underscores_in_headers'), (c) => r.bool(c)) ?? d.underscoresInHeaders,
    requestBuffering: optional(f.get('request_buffering'), (c) => readOnOff(r, c)) ?? d.requestBuffering,
    requestBufferSize: optional(f.get('request_buffer_size'), (c) => readSize(r, c, 0, 64 * 1024 * 1024, 'from 0 to 64m')) ?? d.requestBufferSize,
  };
}

/** A body size: `0` means no limit. Shared with `routes[].max_body_size`. */
export function readBodySize(r: Reader, cur: Cursor): number | undefined {
  return r.parse(cur, `${SIZE_FORMAT} (0 = no limit)`, parseSize);
}

function readSize(r: Reader, cur: Cursor, min: number, max: number, range = 'from 1k to 1m'): number | undefined {
  const n = r.parse(cur, SIZE_FORMAT, parseSize);
  if (n === undefined) return undefined;
  return n >= min && n <= max ? n : r.fail(cur.node, cur.path, `expected a size ${range}, got ${n} bytes`);
}

/** `on` / `off` as nginx writes it (YAML 1.2 reads both as strings), or true / false. */
function readOnOff(r: Reader, cur: Cursor): boolean | undefined {
  const v = (cur.node as { value?: unknown }).value;
  if (v === 'on' || v === true) return true;
  if (v === 'off' || v === false) return false;
  return r.mismatch(cur, 'on or off');
}

/** `allowZero`: `0s` turns the timeout off. */
export function readDuration(r: Reader, cur: Cursor, allowZero: boolean): number | undefined {
  const ms = r.parse(cur, DURATION_FORMAT, parseDuration);
  if (ms === undefined) return undefined;
  return ms > 0 || allowZero ? ms : r.fail(cur.node, cur.path, 'expected a duration > 0');
}
