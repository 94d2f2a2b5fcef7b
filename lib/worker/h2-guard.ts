/**
 * @module HTTP/2 limits of one worker that nghttp2 does not enforce, per connection and per client address:
 * stream resets ("rapid reset", CVE-2023-44487, also when the client reconnects) and streams open at once across
 * a client's connections. A connection over its reset limit is closed with GOAWAY ENHANCE_YOUR_CALM before the
 * chunk that crossed it is processed; a stream over its client's share is refused (REFUSED_STREAM). Logged as one
 * line per client at most every 10 s, with counts, never one per stream.
 */
import type http2 from 'node:http2';
import type { Logger } from '../log/logger.js';
import { H2Port, type PortGuard } from './h2-port.js';
import { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_REFUSED_STREAM } from './h2-codes.js';

/**
 * Envoy's premature-reset rule (`overload.premature_reset_total_stream_count`, 500): a connection whose client
 * reset at least half of its streams is closed, judged from 500 streams on; before that, from 250 resets.
 */
const CONNECTION_RESET_WINDOW = 500;
/**
 * nghttp2's own reset limiter (`nghttp2_option_set_stream_reset_rate_limit`: a burst of 1000, 33 more per
 * second), applied to a client address across all its connections, so that reconnecting does not refill it.
 */
const CLIENT_RESET_BURST = 1000;
const CLIENT_RESET_RATE = 33;
/** Streams one client address may have open across its connections, in http2_max_concurrent_streams. */
const CLIENT_STREAM_SHARE = 2;
/** One log line per client and kind at most this often; also how often idle clients are forgotten. */
const LOG_INTERVAL_MS = 10_000;

/** The session's error when the guard closes it (its 'error' listener ignores it; the log line says why). */
const CALM = Object.assign(new Error('HTTP/2 client over its stream reset limit'), { code: 'BATON_H2_CALM' });

interface Client {
  readonly address: string;
  sessions: number;
  streams: number;
  tokens: number;
  refilledAt: number;
  /** Connections closed, and streams refused, since the last log line about each. */
  closed: number;
  refused: number;
  closedLoggedAt: number;
  refusedLoggedAt: number;
  /** What the latest closed connection did, for the log line. */
  last: { rule: string; streams: number; resets: number } | null;
}

const kClient = Symbol('baton.h2client');
type Tagged = { [kClient]?: Client };

function onSessionClose(this: http2.ServerHttp2Session & Tagged): void {
  const c = this[kClient];
  if (c) c.sessions--;
}

function onStreamClose(this: http2.ServerHttp2Stream & Tagged): void {
  const c = this[kClient];
  if (c) c.streams--;
}

/** A stream the guard refused: it is already closed when its request would start. */
export function refusedStream(stream: http2.ServerHttp2Stream): boolean {
  return stream.closed && stream.rstCode === NGHTTP2_REFUSED_STREAM;
}

export class H2Guard implements PortGuard {
  readonly #clients = new Map<string, Client>();
  readonly #streamShare: number;
  readonly #log: Logger | undefined;
  #sweeper: NodeJS.Timeout | null = null;

  constructor(maxConcurrentStreams: number, log?: Logger) {
    this.#streamShare = CLIENT_STREAM_SHARE * maxConcurrentStreams;
    this.#log = log;
  }

  /** Guard the sessions of `server` (every one runs on an H2Port). */
  attach(server: http2.Http2Server): void {
    server.on('session', (session: http2.ServerHttp2Session & Tagged) => {
      const port = H2Port.of(session);
      if (!port) return;
      const client = this.#enter(port.remoteAddress ?? '');
      client.sessions++;
      session[kClient] = client;
      session.once('close', onSessionClose);
      port.session = session;
      port.guard = this;
    });
    // Before the compat layer's listener, which turns the stream into a request.
    server.prependListener('stream', (stream: http2.ServerHttp2Stream & Tagged) => {
      const client = (stream.session as (http2.ServerHttp2Session & Tagged) | undefined)?.[kClient];
      if (!client) return;
      if (client.streams >= this.#streamShare) {
        stream.close(NGHTTP2_REFUSED_STREAM);
        client.refused++;
        this.#report(client, false);
        return;
      }
      client.streams++;
      stream[kClient] = client;
      stream.once('close', onStreamClose);
    });
  }

  /** Clients known now (with an open session, a reset budget being refilled, or counts not yet logged). */
  clients(): number {
    return this.#clients.size;
  }

  allow(port: H2Port, chunk: Buffer): boolean {
    const resets = port.frames.scan(chunk);
    if (resets === 0) return true;
    const { streams, resets: total } = port.frames;
    if (total * 2 >= Math.max(streams, CONNECTION_RESET_WINDOW)) return this.#calm(port, 'connection: half of its streams reset');
    const c = (port.session as (http2.ServerHttp2Session & Tagged) | null)?.[kClient];
    if (!c) return true;
    refill(c, Date.now());
    if (c.tokens < resets) {
      c.tokens = 0;
      return this.#calm(port, `client: over ${CLIENT_RESET_BURST} resets, then ${CLIENT_RESET_RATE} a second`);
    }
    c.tokens -= resets;
    return true;
  }

  #calm(port: H2Port, rule: string): false {
    const session = port.session;
    const c = (session as (http2.ServerHttp2Session & Tagged) | null)?.[kClient];
    // nghttp2 sends GOAWAY with this code and the last stream it processed; the socket closes after it. (Without
    // an error, destroy() would take its default, NO_ERROR, as the code.)
    if (session && !session.destroyed) session.destroy(CALM, NGHTTP2_ENHANCE_YOUR_CALM);
    else port.destroy();
    if (c) {
      c.closed++;
      c.last = { rule, streams: port.frames.streams, resets: port.frames.resets };
      this.#report(c, true);
    }
    return false;
  }

  #enter(address: string): Client {
    let c = this.#clients.get(address);
    if (c === undefined) {
      const now = Date.now();
      c = { address, sessions: 0, streams: 0, tokens: CLIENT_RESET_BURST, refilledAt: now, closed: 0, refused: 0, closedLoggedAt: 0, refusedLoggedAt: 0, last: null };
      this.#clients.set(address, c);
      if (this.#sweeper === null) {
        this.#sweeper = setInterval(() => this.#sweep(), LOG_INTERVAL_MS);
        this.#sweeper.unref();
      }
    }
    return c;
  }

  #report(c: Client, closed: boolean): void {
    const now = Date.now();
    if (now - (closed ? c.closedLoggedAt : c.refusedLoggedAt) >= LOG_INTERVAL_MS) this.#flush(c, now, closed);
  }

  #flush(c: Client, now: number, closed: boolean): void {
    if (closed) {
      this.#log?.warn({ client: c.address, connections_closed: c.closed, ...c.last }, 'HTTP/2 client resets streams too fast: connection closed with GOAWAY ENHANCE_YOUR_CALM');
      c.closed = 0;
      c.closedLoggedAt = now;
    } else {
      this.#log?.warn({ client: c.address, streams_refused: c.refused, open_streams: c.streams, limit: this.#streamShare }, 'HTTP/2 client over its share of open streams: new streams refused (REFUSED_STREAM)');
      c.refused = 0;
      c.refusedLoggedAt = now;
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of this.#clients.values()) {
      if (c.closed > 0) this.#flush(c, now, true);
      if (c.refused > 0) this.#flush(c, now, false);
      refill(c, now);
      if (c.sessions === 0 && c.streams === 0 && c.tokens >= CLIENT_RESET_BURST) this.#clients.delete(c.address);
    }
    if (this.#clients.size === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  }
}

function refill(c: Client, now: number): void {
  c.tokens = Math.min(CLIENT_RESET_BURST, c.tokens + ((now - c.refilledAt) * CLIENT_RESET_RATE) / 1000);
  c.refilledAt = now;
}
