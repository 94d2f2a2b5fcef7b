/**
 * @module HTTP/1.1 to one target over TCP, TLS or a unix socket: at most `connections` sockets, one request at a time
 * on each, idle ones kept for `keepalive_timeout` and reused last-in first-out (the most recently used is the
 * least likely to have been closed by the upstream), requests beyond the bound waiting in order. It speaks
 * undici's dispatch handler protocol, so the upstream attempt drives it like the undici Pool it replaces (see
 * h1-conn.ts for why). TLS connections resume the pool's last session (nginx's `proxy_ssl_session_reuse`).
 */
import type { UpstreamConfig } from '../../config/types.js';
import { coded } from '../errors.js';
import { hostPort, type TargetEndpoint } from './connect.js';
import { H1Conn, H1Request, type ConnOwner, type Handler, type Options } from './h1-conn.js';
import type { TargetPool } from './h2-pool.js';

export class H1Pool implements TargetPool, ConnOwner {
  readonly hostHeader: string;
  readonly keepAlive: number;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly connectTimeout: number;
  tlsSession: Buffer | null = null;
  readonly #endpoint: TargetEndpoint;
  readonly #max: number;
  /** Every socket open or opening. */
  readonly #conns = new Set<H1Conn>();
  /** Connected and without a request, most recently used last. */
  readonly #idle: H1Conn[] = [];
  /** Requests waiting for a connection, in arrival order. */
  #queue: H1Request[] = [];
  #closed = false;
  /** Resolves the promises of close() once every socket is gone. */
  readonly #whenClosed: Array<() => void> = [];

  constructor(up: UpstreamConfig, endpoint: TargetEndpoint, connections: number) {
    this.#endpoint = endpoint;
    this.#max = Math.max(1, connections);
    this.keepAlive = up.keepaliveTimeout;
    this.headersTimeout = up.responseTimeout;
    this.bodyTimeout = up.idleTimeout;
    this.connectTimeout = up.connectTimeout;
    // Without the scheme's default port, as undici and browsers write Host.
    this.hostHeader = endpoint.kind === 'unix' ? 'localhost' : hostPort(endpoint.host, endpoint.port, endpoint.kind === 'tls' ? 443 : 80);
  }

  /** Sockets open or opening (for tests and /status). */
  get connections(): number {
    return this.#conns.size;
  }

  dispatch(opts: Options, handler: Handler): boolean {
    const x = new H1Request(opts, handler);
    if (this.#closed) {
      queueMicrotask(() => x.fail(coded('UND_ERR_CLOSED', 'the upstream pool is closed')));
      return true;
    }
    const conn = this.#take();
    if (conn !== null) conn.start(x);
    else this.#queue.push(x);
    return true;
  }

  /** An idle connection still open, or a new one under the bound; null when the request must wait. */
  #take(): H1Conn | null {
    const idle = this.#idle;
    while (idle.length > 0) {
      const conn = idle.pop()!;
      if (conn.usable) return conn;
      conn.close();
    }
    if (this.#conns.size >= this.#max) return null;
    const conn = new H1Conn(this, this.#endpoint);
    this.#conns.add(conn);
    return conn;
  }

  released(conn: H1Conn, reusable: boolean): void {
    if (reusable && this.#conns.has(conn)) {
      if (this.#queue.length > 0) {
        // Released from inside the read that completed its response: an end or reset the upstream sent right behind
        // it is read only at the event loop's next poll, which `start`'s one-turn check alone would not wait for
        // (its immediate runs before that poll). One turn here puts that poll between the two.
        setImmediate(() => this.#reuse(conn));
        return;
      }
      if (!this.#closed && conn.parkIdle(conn.hint)) {
        this.#idle.push(conn);
        return;
      }
      conn.close();
    }
    this.#pump();
  }

  /** A connection released while requests waited, one turn later: the first still waiting, or the idle list. */
  #reuse(conn: H1Conn): void {
    if (!this.#conns.has(conn)) return this.#pump();
    if (!conn.usable) return conn.close(); // gone() then pumps
    let x = this.#queue.shift();
    while (x !== undefined && x.done) x = this.#queue.shift();
    if (x === undefined) this.released(conn, true);
    else conn.start(x);
  }

  /** A request its connection gave back unwritten (found closed or dirty before the write): first in line again. */
  retry(x: H1Request): void {
    this.#queue.unshift(x);
    this.#pump();
  }

  gone(conn: H1Conn): void {
    if (!this.#conns.delete(conn)) return;
    const i = this.#idle.lastIndexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    this.#pump();
    if (this.#closed && this.#conns.size === 0 && this.#queue.length === 0) for (const resolve of this.#whenClosed.splice(0)) resolve();
  }

  /** Waiting requests get the connections that freed up (or new ones in the room left). */
  #pump(): void {
    while (this.#queue.length > 0) {
      const conn = this.#take();
      if (conn === null) return;
      const x = this.#queue.shift()!;
      if (x.done) {
        this.released(conn, conn.usable);
        continue;
      }
      conn.start(x);
    }
  }

  /** Stop taking requests; resolves once the requests in flight and waiting are done and every socket closed. */
  close(): Promise<void> {
    this.#closed = true;
    for (const conn of this.#idle.splice(0)) conn.close();
    if (this.#conns.size === 0 && this.#queue.length === 0) return Promise.resolve();
    for (const conn of this.#conns) conn.close();
    return new Promise((resolve) => { this.#whenClosed.push(resolve); });
  }
}
