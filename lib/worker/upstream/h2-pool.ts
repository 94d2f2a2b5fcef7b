/**
 * @module HTTP/2 to one target, with Node's http2 client: many requests multiplexed on as few connections as the
 * target's SETTINGS_MAX_CONCURRENT_STREAMS allows, request and response bodies streaming at the same time (gRPC
 * bidirectional calls), trailers both ways. It speaks undici's dispatch handler protocol (onConnect, onHeaders,
 * onData, onComplete, onError, onBodySent, onRequestSent), so the upstream attempt drives it like an undici Pool.
 *
 * Why not undici's own HTTP/2 (`allowH2`): in undici 7.30 a request that is not idempotent or has a stream body
 * waits until its connection has no other request running (client-h2.js `busy()`), so every gRPC call, a POST
 * with a streamed body, gets a connection of its own and nothing is multiplexed; and it has no prior knowledge on
 * unix sockets. Checked against undici 7.30.2's source.
 */
import type http2 from 'node:http2';
import { NGHTTP2_NO_ERROR, http2Module } from '../h2-codes.js';
import type net from 'node:net';
import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/types.js';
import { coded } from '../errors.js';
import { connectH2, hostPort, type TargetEndpoint } from './connect.js';
import { Conn, Exchange, INITIAL_STREAMS, type ExchangePool } from './h2-exchange.js';

/** Never more than this per connection, whatever the target allows: spread over more connections instead. */
const MAX_STREAMS = 1000;
/** How long a learned count of streams per connection holds (see H2Pool.#perConnection). */
const LEARNED_FOR = 60_000;

type Handler = Dispatcher.DispatchHandler;
type Options = Dispatcher.DispatchOptions;

/** What the upstream attempt needs of a connection pool (an undici Pool, or this). */
export interface TargetPool {
  dispatch(opts: Options, handler: Handler): boolean;
  close(): Promise<void>;
}

export class H2Pool implements TargetPool, ExchangePool {
  readonly #endpoint: TargetEndpoint;
  readonly #up: UpstreamConfig;
  readonly #authority: string;
  readonly #scheme: 'http' | 'https';
  readonly #conns = new Set<Conn>();
  #tlsSession: Buffer | null = null;
  #closed = false;
  /**
   * Streams the target takes per connection, learned from its GOAWAYs (0: unknown). A target that closes each
   * connection after so many requests (nginx's keepalive_requests) refuses what is on its way past them; once
   * three connections in a row ended at the same count with first tries cut off, each new connection carries that
   * many and no more, so nothing is refused (or sent twice) any more. Three, not two: a reload of the target also
   * ends connections with streams cut off, at counts that two connections may share by chance. First tries only:
   * the streams one cut sends again would otherwise count as the next connections' cuts. Forgotten after
   * LEARNED_FOR, since a connection closed at the count never shows that the target now takes more.
   */
  #perConnection = 0;
  #learnedAt = 0;
  /** The count at which the last connections a GOAWAY ended with first tries cut off, and how many in a row. */
  #lastCut = -1;
  #cutRun = 0;

  constructor(up: UpstreamConfig, endpoint: TargetEndpoint) {
    this.#up = up;
    this.#endpoint = endpoint;
    this.#scheme = endpoint.kind === 'tls' ? 'https' : 'http';
    this.#authority = endpoint.kind === 'unix' ? 'localhost' : hostPort(endpoint.host, endpoint.port);
  }

  /** Connections open or opening (for tests and /status). */
  get connections(): number {
    return this.#conns.size;
  }

  dispatch(opts: Options, handler: Handler): boolean {
    const ex = new Exchange(this, opts, handler);
    if (this.#closed) {
      queueMicrotask(() => ex.fail(coded('UND_ERR_CLOSED', 'the upstream pool is closed')));
      return true;
    }
    this.#assign(ex);
    return true;
  }

  again(ex: Exchange): void {
    if (this.#closed) return ex.fail(coded('UND_ERR_CLOSED', 'the upstream pool is closed'));
    this.#assign(ex, true);
  }

  #assign(ex: Exchange, again = false): void {
    if (this.#perConnection > 0 && Date.now() - this.#learnedAt > LEARNED_FOR) this.#perConnection = 0;
    const conn = this.#pick();
    conn.streams++;
    conn.total++;
    if (!again) conn.lastFirstTry = conn.total;
    // The target's last stream on this connection: none after it (the connection closes once they are done).
    if (conn.total === this.#perConnection) conn.closing = true;
    if (conn.idleTimer !== null) {
      clearTimeout(conn.idleTimer);
      conn.idleTimer = null;
    }
    if (conn.session === null) conn.waiting.push(ex);
    else ex.start(conn);
  }

  #pick(): Conn {
    for (const c of this.#conns) if (!c.closing && c.streams < c.maxStreams) return c;
    return this.#open();
  }

  #open(): Conn {
    const conn = new Conn();
    this.#conns.add(conn);
    const up = this.#up;
    connectH2(this.#endpoint, up.connectTimeout, this.#tlsSession, (s) => { this.#tlsSession = s; }, (err, socket) => {
      if (err !== null) return this.#connectFailed(conn, err);
      this.#ready(conn, socket!);
    });
    return conn;
  }

  #connectFailed(conn: Conn, err: Error): void {
    this.#conns.delete(conn);
    conn.closing = true;
    const waiting = conn.waiting;
    conn.waiting = [];
    for (const ex of waiting) ex.fail(err);
  }

  #ready(conn: Conn, socket: net.Socket): void {
    const session = http2Module().connect(`${this.#scheme}://${this.#authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
    });
    conn.session = session;
    session.on('remoteSettings', (s) => {
      conn.maxStreams = Math.max(1, Math.min(s.maxConcurrentStreams ?? INITIAL_STREAMS, MAX_STREAMS));
    });
    session.on('goaway', (code: number, lastStreamId: number) => {
      conn.closing = true;
      conn.goawayLast = Math.min(conn.goawayLast, lastStreamId);
      // Client streams have odd ids from 1: `taken` streams reached the target, `conn.total` were given to it.
      const taken = (lastStreamId + 1) / 2;
      if (code !== NGHTTP2_NO_ERROR || lastStreamId >= 2 ** 31 - 1 || !Number.isInteger(taken)) return;
      // Nothing cut off, or only streams sent again (streams go out in the order they are given): nothing new.
      if (conn.lastFirstTry <= taken || taken < 2) return;
      this.#cutRun = taken === this.#lastCut ? this.#cutRun + 1 : 1;
      this.#lastCut = taken;
      if (this.#cutRun >= 3) {
        this.#perConnection = taken;
        this.#learnedAt = Date.now();
      }
    });
    session.on('error', (e: Error) => { conn.error = e; });
    session.on('close', () => {
      conn.closing = true;
      this.#conns.delete(conn);
      if (conn.idleTimer !== null) clearTimeout(conn.idleTimer);
    });
    const waiting = conn.waiting;
    conn.waiting = [];
    for (const ex of waiting) ex.start(conn);
    if (this.#closed) session.close();
  }

  /** A stream of `conn` ended: close the connection once idle past `keepalive_timeout`. */
  released(conn: Conn): void {
    conn.streams--;
    if (conn.streams > 0 || conn.session === null) return;
    const session = conn.session;
    if (this.#closed || conn.closing || this.#up.keepaliveTimeout === 0) {
      conn.closing = true;
      session.close();
      return;
    }
    conn.idleTimer = setTimeout(() => {
      conn.idleTimer = null;
      conn.closing = true;
      session.close();
    }, this.#up.keepaliveTimeout);
    conn.idleTimer.unref();
  }

  get scheme(): 'http' | 'https' {
    return this.#scheme;
  }

  get authority(): string {
    return this.#authority;
  }

  get upstream(): UpstreamConfig {
    return this.#up;
  }

  /** Stop taking requests; resolves once every connection has closed (streams in flight finish first). */
  async close(): Promise<void> {
    this.#closed = true;
    const closing: Promise<void>[] = [];
    for (const c of this.#conns) {
      if (c.idleTimer !== null) clearTimeout(c.idleTimer);
      const session = c.session;
      if (session === null) continue; // closes itself once ready (see #ready)
      closing.push(new Promise((resolve) => {
        if (session.closed || session.destroyed) return resolve();
        session.close(() => resolve());
      }));
    }
    await Promise.all(closing);
  }
}
