/**
 * @module The last phase of every request: its access-log line and its counts in /metrics, and the error-log
 * lines of the request path, all naming an upstream the same way (`upstream`: its name, `target`: host:port).
 * Requests their clients abandoned (499) get no error-log line each: one summary a second at most per worker
 * says how many, so that a flood of resets (HTTP/2 rapid reset) cannot flood the logs.
 */
import type { Logger, Logs } from '../log/logger.js';
import { recorder } from '../metrics/recorder.js';
import { logAccess, type AccessRecord } from './access-log.js';
import { errorCode, type Failure } from './errors.js';

const SUMMARY_MS = 1000;

/** Where a request went upstream, for the logs. */
export interface Peer {
  /** The upstream's name. */
  readonly upstream: string;
  /** The target's `host:port`, or null when none was tried. */
  readonly target: string | null;
}

/** The fields of an error-log line about one request. */
export interface RequestFacts {
  readonly requestId: string;
  readonly method: string;
  /** The request target as received. */
  readonly url: string;
  /** The route's label, or null. */
  readonly route: string | null;
}

export class RequestLog {
  readonly error: Logger;
  readonly #access: Logger | null;
  readonly #queryStrings: boolean;
  #abandoned = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(logs: Logs, queryStrings: boolean) {
    this.error = logs.error;
    this.#access = logs.access;
    this.#queryStrings = queryStrings;
  }

  /** The request target as the logs show it: without its query string when `log.query_strings` is false. */
  path(url: string): string {
    if (this.#queryStrings) return url;
    const q = url.indexOf('?');
    return q === -1 ? url : url.slice(0, q);
  }

  /** The access log is on: build no record otherwise. */
  get accessOn(): boolean {
    return this.#access !== null;
  }

  /** One access-log line (when the access log is on); `record.path` is the target as received, filtered here. */
  access(record: AccessRecord): void {
    if (this.#access !== null) logAccess(this.#access, record, this.path(record.path));
  }

  /** One finished HTTP request in /metrics (the same status as its access-log line). */
  count(route: number, status: number, durationMs: number, upstreamMs: number): void {
    recorder.request(route, status, durationMs, upstreamMs);
  }

  /** One closed WebSocket tunnel, by its handshake's answer (101, a relayed refusal, 502...; 499: none). */
  countTunnel(route: number, status: number): void {
    recorder.tunnel(route, status);
  }

  /** One failed upstream attempt, by the route's upstream. */
  upstreamFailure(route: number, failure: Failure): void {
    recorder.upstreamFailure(route, failure.kind, failure.code);
  }

  /** A request its client abandoned before its answer (499): counted, and summed up in the error log. */
  abandoned(): void {
    this.#abandoned++;
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#summary(), SUMMARY_MS);
      this.#timer.unref();
    }
  }

  #summary(): void {
    this.#timer = null;
    const count = this.#abandoned;
    this.#abandoned = 0;
    if (count > 0) this.error.info({ count, status: 499 }, 'requests abandoned by their clients before the response was complete (in the last second)');
  }

  /** Write the pending summary now (the worker is leaving). */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#summary();
  }

  /** An upstream failure of one request. */
  failure(level: 'info' | 'warn' | 'error', failure: Failure, err: Error, peer: Peer, facts: RequestFacts, msg: string): void {
    this.error[level]({
      code: failure.code === 'UNKNOWN' || failure.code === 'HPE' || failure.code === 'ERR_SSL' ? errorCode(err) : failure.code,
      error: err.message,
      upstream: peer.upstream,
      target: peer.target,
      route: facts.route,
      request_id: facts.requestId,
      method: facts.method,
      path: this.path(facts.url),
    }, msg);
  }

  /** A request refused before anything went upstream (400, 405, 413, 417, 431, 505). */
  refused(status: number, reason: string, client: string, facts: RequestFacts): void {
    this.error.info({ client, method: facts.method, path: this.path(facts.url), status, reason, request_id: facts.requestId }, status === 400 ? 'bad request' : 'request refused');
  }
}
