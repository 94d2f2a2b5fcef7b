/**
 * @module The access-log record: one JSON line per finished request or tunnel (pino adds `time`). One type, so
 * HTTP exchanges and WebSocket tunnels log the same fields.
 */
import { accessTime, writeLine, type Logger } from '../log/logger.js';

export interface AccessRecord {
  /** Client address (IPv4-mapped IPv6 shown as IPv4). */
  readonly client: string;
  readonly method: string;
  /** Routing host: lower-case, no port. */
  readonly host: string;
  /** Request target as received. */
  readonly path: string;
  /** 499 when the client left before the response was complete. */
  readonly status: number;
  /** Response body bytes handed to the client connection. */
  readonly bytes: number;
  /** ms from request arrival to close. */
  readonly duration: number;
  /** Target origin, or null when nothing went upstream. */
  readonly upstream: string | null;
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

const str = JSON.stringify;

/** One line per request, with the fields in a fixed order; strings that come from clients are escaped. */
export function logAccess(log: Logger, r: AccessRecord): void {
  writeLine(log, `{${accessTime()},"client":${str(r.client)},"method":${str(r.method)},"host":${str(r.host)},"path":${str(r.path)},"status":${r.status},"bytes":${r.bytes},"duration":${r.duration},"upstream":${r.upstream === null ? 'null' : str(r.upstream)},"upstream_time":${r.upstream_time === null ? 'null' : r.upstream_time},"request_id":${str(r.request_id)},"protocol":${str(r.protocol)}}\n`);
}
