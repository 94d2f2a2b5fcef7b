/**
 * @module The access-log line: one JSON line per answered request or tunnel, written by hand into the access
 * logger's destination. One record type, so HTTP exchanges, WebSocket tunnels and the HTTP/1 parser's own
 * refusals log the same fields.
 */
import { accessTime, writeLine, type Logger } from '../log/logger.js';

export interface AccessRecord {
  /** Client address (IPv4-mapped IPv6 shown as IPv4). */
  readonly client: string;
  readonly method: string;
  /** Routing host: lower-case, no port. */
  readonly host: string;
  /** Request target as received ('' when the parser refused the request line). */
  readonly path: string;
  /** 499 when the client left before the response was complete. */
  readonly status: number;
  /** Response body bytes handed to the client connection. */
  readonly bytes: number;
  /** ms from request arrival to close. */
  readonly duration: number;
  /** The upstream's name, or null when the request went to none. */
  readonly upstream: string | null;
  /** The target's `host:port`, or null when nothing went upstream. */
  readonly target: string | null;
  /** ms from the first upstream dispatch to the response headers, or null. */
  readonly upstream_time: number | null;
  readonly request_id: string;
  readonly protocol: string;
}

const PROTOCOLS: Readonly<Record<string, string>> = { '1.1': 'HTTP/1.1', '1.0': 'HTTP/1.0', '2.0': 'HTTP/2.0' };

export function protocolName(httpVersion: string): string {
  return PROTOCOLS[httpVersion] ?? `HTTP/${httpVersion}`;
}

/** Milliseconds between two `performance.now()` readings, 3 decimals. */
export function ms(from: number, to: number): number {
  return Math.round((to - from) * 1000) / 1000;
}

/** Thousandths of a millisecond up to this (11.5 days) are written from integers; anything else by String(). */
const DECIMAL3_MAX = 1e12;

/**
 * A figure of `ms()` as JavaScript writes it ("0.087", "1.5", "12"), built from integers: V8 turns an integer into
 * text from a cache, but a fraction through its general double-to-text conversion, which made the two durations
 * the largest single cost of building a line (perf: NumberToString, about 2% of a proxying worker's CPU).
 */
export function decimal3(value: number): string {
  const k = Math.round(value * 1000);
  if (!(k >= 0 && k <= DECIMAL3_MAX)) return String(value);
  const i = Math.floor(k / 1000);
  const f = k - i * 1000;
  if (f === 0) return `${i}`;
  if (f % 100 === 0) return `${i}.${f / 100}`;
  if (f % 10 === 0) return `${i}.${f < 100 ? '0' : ''}${f / 10}`;
  return `${i}.${f < 10 ? '00' : f < 100 ? '0' : ''}${f}`;
}

/**
 * `s` as the inside of a JSON string literal. Nearly every value needs no escaping (addresses, validated hosts,
 * tokens, request ids, ordinary paths): it is then used as it is, which spares a JSON.stringify copy per field
 * and per request (about half a kilobyte of garbage a line, measured with scripts/alloc-per-request).
 */
function inner(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 /* " */ || c === 0x5c /* \ */ || c > 0x7e) return JSON.stringify(s).slice(1, -1);
  }
  return s;
}

function nullable(s: string | null): string {
  return s === null ? 'null' : `"${inner(s)}"`;
}

/** One line per request, with the fields in a fixed order; strings that come from clients are escaped. `path`: as logged. */
export function logAccess(log: Logger, r: AccessRecord, path = r.path): void {
  writeLine(log, `{${accessTime()},"client":"${inner(r.client)}","method":"${inner(r.method)}","host":"${inner(r.host)}","path":"${inner(path)}","status":${r.status},"bytes":${r.bytes},"duration":${decimal3(r.duration)},"upstream":${nullable(r.upstream)},"target":${nullable(r.target)},"upstream_time":${r.upstream_time === null ? 'null' : decimal3(r.upstream_time)},"request_id":"${inner(r.request_id)}","protocol":"${inner(r.protocol)}"}\n`);
}
