/**
 * @module How a worker leaves without failing a request (DESIGN §4). Connections are tracked from the TCP accept
 * to the close, TLS handshakes included. On drain: stop accepting (this process's handles only; the kernel socket
 * stays with the master), answer every later HTTP/1 response with `Connection: close` (decided when headers are
 * written), close idle keep-alive connections only after a quiet period and with a FIN, let TLS handshakes in
 * progress finish (bounded by the handshake timeout, `header_timeout`), give every HTTP/2 session the two-phase
 * GOAWAY, leave upgraded tunnels until the deadline, and exit the moment nothing is left.
 */
import type { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { H2Port } from './h2-port.js';
import { maxRequestsReached, sessionSocket, setPeer } from '../util/internals.js';

export interface DrainTimings {
  /** An idle keep-alive connection is closed once it has been quiet this long after drain started. */
  readonly quietMs: number;
  /** After our FIN, how long the peer gets to close its side before the socket is destroyed. */
  readonly lingerMs: number;
  /** Between GOAWAY(2^31-1) and the final GOAWAY: about one round trip, for streams already on the wire. */
  readonly goawayGraceMs: number;
}

const TIMINGS: DrainTimings = { quietMs: 1000, lingerMs: 2000, goawayGraceMs: 300 };
const MAX_STREAM_ID = 2 ** 31 - 1;

/** What a socket needs to be closed at the right time; found from the socket, its requests and its session. */
interface Tracked {
  readonly drainer: Drainer;
  readonly socket: net.Socket;
  active: number;
  idleSince: number;
  /** Taken over by an Upgrade (WebSocket) or by an HTTP/2 session: not ours to idle-close. */
  owned: boolean;
  timer: NodeJS.Timeout | null;
}

const TRACK = Symbol('baton.track');
type TrackedSocket = net.Socket & { [TRACK]?: Tracked };
type TrackedResponse = http.ServerResponse & { [TRACK]?: Tracked };
type TrackedSession = http2.ServerHttp2Session & { [TRACK]?: Drainer };
/** The TCP socket under a TLS one. */
type TcpSocket = net.Socket & { [TRACK]?: Drainer };

/**
 * The events by which an HTTP/1 server hands a request to its listeners, one per request: 'request', or instead
 * 'checkContinue' (`Expect: 100-continue`) or 'checkExpectation' (any other `Expect`). Missing one would take a
 * connection with a request in flight for idle.
 */
const REQUEST_EVENTS = ['request', 'checkContinue', 'checkExpectation'] as const;
/** The events by which a socket leaves the HTTP/1 parser for good (a tunnel): never idle, never ours to close. */
const TAKEOVER_EVENTS = ['upgrade', 'connect'] as const;

/** Some Drainer of this process is draining: responses read it (a worker has one Drainer). */
let processDraining = false;

/**
 * A session over an H2Port sees a JSStreamSocket, which knows no addresses: give it the client's, which the
 * request handler reads through `req.socket` (X-Forwarded-For, X-Forwarded-Proto, the access log). Values, not
 * getters: they do not change, and getters would cost five closures per connection.
 */
export function exposeClient(session: http2.ServerHttp2Session): void {
  const port = H2Port.of(session);
  if (!port) return;
  const js = sessionSocket(session)! as { encrypted?: boolean; alpnProtocol?: string | false };
  setPeer(js, port.remoteAddress, port.remotePort, port.remoteFamily);
  js.encrypted = port.encrypted;
  js.alpnProtocol = port.alpnProtocol ?? false;
}

/** Every response decides keep-alive when its headers are written, not when its request arrived. */
export class DrainAwareResponse extends http.ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    // Node marks the last response allowed by maxRequestsPerSocket (keepalive_requests) with Connection: close
    // but leaves the connection open for the client to close; nginx closes it, and so do we.
    if (processDraining || maxRequestsReached(this)) this.shouldKeepAlive = false;
    return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
  }
}

/** The servers that parse connections, as far as a Drainer is concerned: they emit the request events and 'session'. */
export type Parser = Pick<EventEmitter, 'on'>;

export class Drainer {
  /** Connections whose protocol socket we know: cleartext from the accept, TLS from the end of the handshake. */
  readonly #sockets = new Set<Tracked>();
  /** TCP connections of TLS listeners, from the accept: each is a handshake until its TLS socket is tracked. */
  readonly #tcp = new Set<net.Socket>();
  /** TLS sockets among #sockets. */
  #secured = 0;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #servers: net.Server[] = [];
  #onEmpty: (() => void) | null = null;
  #requests = 0;
  #draining = false;
  readonly #timings: DrainTimings;

  constructor(timings: DrainTimings = TIMINGS) {
    this.#timings = timings;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get requests(): number {
    return this.#requests;
  }

  /** HTTP/2 sessions open now (each also counts as a connection). */
  sessions(): number {
    return this.#sessions.size;
  }

  /** TLS handshakes in progress. */
  handshakes(): number {
    // A TCP socket may report its close a moment before the TLS socket over it.
    return Math.max(0, this.#tcp.size - this.#secured);
  }

  connections(): number {
    return this.#sockets.size + this.handshakes();
  }

  /**
   * Track the connections `server` accepts, and the requests and HTTP/2 sessions of `protocols` (the servers that
   * parse those connections; the server itself unless a front hands them on). A TLS server's connections count
   * from the TCP accept ('connection'), so a drain waits for their handshakes; the TLS socket that requests see
   * is tracked from 'secureConnection'.
   */
  watch(server: net.Server, protocols: readonly Parser[] = [server], tls = false): void {
    this.#servers.push(server);
    if (tls) {
      server.on('connection', (socket: TcpSocket) => {
        this.#tcp.add(socket);
        socket[TRACK] = this;
        socket.once('close', Drainer.#onTcpClose);
      });
    }
    server.on(tls ? 'secureConnection' : 'connection', (socket: TrackedSocket) => this.#track(socket, tls));
    const onRequest = (req: http.IncomingMessage, res: TrackedResponse) => this.#request(req, res);
    const onTakeover = (req: http.IncomingMessage, socket: net.Socket) => this.markUpgraded(socket);
    for (const p of protocols) {
      // Node emits exactly one of these per request: a request that came with `Expect` is no less in flight.
      for (const event of REQUEST_EVENTS) p.on(event, onRequest);
      for (const event of TAKEOVER_EVENTS) p.on(event, onTakeover);
      p.on('session', (session: TrackedSession) => {
        this.#sessions.add(session);
        session[TRACK] = this;
        session.once('close', Drainer.#onSessionClose);
        if (this.#draining) this.#goaway(session);
      });
    }
  }

  #request(req: http.IncomingMessage, res: TrackedResponse): void {
    this.#requests++;
    if (req.httpVersionMajor !== 1) return; // HTTP/2 streams live and die with their session
    const t = (req.socket as TrackedSocket)[TRACK];
    if (!t) return;
    t.active++;
    if (t.timer) { clearTimeout(t.timer); t.timer = null; }
    res[TRACK] = t;
    res.once('close', Drainer.#onResponseClose);
  }

  #track(socket: TrackedSocket, tls: boolean): void {
    const t: Tracked = { drainer: this, socket, active: 0, idleSince: Date.now(), owned: (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2', timer: null };
    socket[TRACK] = t;
    this.#sockets.add(t);
    if (tls) this.#secured++;
    socket.once('close', tls ? Drainer.#onSecureClose : Drainer.#onClose);
    if (this.#draining) this.#scheduleIdleClose(t);
  }

  // Listeners shared by every socket, response and session (`this` is the emitter): no closure per connection.
  static #onClose(this: TrackedSocket): void {
    const t = this[TRACK]!;
    if (t.timer) clearTimeout(t.timer);
    t.drainer.#sockets.delete(t);
    t.drainer.check();
  }

  static #onTcpClose(this: TcpSocket): void {
    const d = this[TRACK]!;
    d.#tcp.delete(this);
    d.check();
  }

  static #onSecureClose(this: TrackedSocket): void {
    this[TRACK]!.drainer.#secured--;
    Drainer.#onClose.call(this);
  }

  static #onResponseClose(this: TrackedResponse): void {
    const t = this[TRACK]!;
    t.active--;
    t.idleSince = Date.now();
    if (t.drainer.#draining && t.active === 0) t.drainer.#scheduleIdleClose(t);
  }

  static #onSessionClose(this: TrackedSession): void {
    this[TRACK]!.#sessions.delete(this);
  }

  /** The h2c front decided what a cleartext connection speaks. */
  markH2(socket: net.Socket, h2: boolean): void {
    const t = (socket as TrackedSocket)[TRACK];
    if (t && h2) t.owned = true;
  }

  /** Mark a socket taken over by an Upgrade (WebSocket): it lives until the deadline or its own close. */
  markUpgraded(socket: net.Socket): void {
    const t = (socket as TrackedSocket)[TRACK];
    if (t) t.owned = true;
  }

  start(onEmpty: () => void): void {
    if (this.#draining) return;
    this.#draining = true;
    processDraining = true;
    this.#onEmpty = onEmpty;
    // net.Server#close only: http.Server#close would also cut idle keep-alive connections at once, which is
    // exactly the race that makes nginx fail requests during reloads.
    for (const s of this.#servers) net.Server.prototype.close.call(s);
    for (const t of this.#sockets) if (t.active === 0) this.#scheduleIdleClose(t);
    for (const session of this.#sessions) this.#goaway(session);
    this.check();
  }

  /**
   * RFC 9113 §6.8: a GOAWAY with the maximum stream id first, so streams the client opens meanwhile are still
   * served; about one round trip later the final GOAWAY with the real last stream id (session.close), after
   * which the session ends when its streams do. The first one is written by the session's H2Port (see there
   * why nghttp2 cannot send it); a session on a socket of its own gets nghttp2's GOAWAY, which refuses the
   * streams that cross it.
   */
  #goaway(session: http2.ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    if (!H2Port.of(session)?.notice()) {
      try {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      } catch {
        /* the session is going away by itself */
      }
    }
    setTimeout(() => {
      if (!session.closed && !session.destroyed) session.close();
    }, this.#timings.goawayGraceMs).unref();
  }

  #scheduleIdleClose(t: Tracked): void {
    if (t.owned || t.active > 0 || t.timer) return;
    const wait = Math.max(0, t.idleSince + this.#timings.quietMs - Date.now());
    t.timer = setTimeout(() => {
      t.timer = null;
      const socket = t.socket;
      if (t.active > 0 || t.owned || socket.destroyed) return;
      if (socket.readableLength > 0) {
        // Bytes of a next request are waiting: let it be served (with Connection: close) instead of resetting it.
        t.idleSince = Date.now();
        this.#scheduleIdleClose(t);
        return;
      }
      socket.end();
      setTimeout(() => socket.destroy(), this.#timings.lingerMs).unref();
    }, wait);
  }

  check(): void {
    if (this.#draining && this.#onEmpty && this.connections() === 0) {
      const done = this.#onEmpty;
      this.#onEmpty = null;
      done();
    }
  }

  /** The hard limit: close whatever is left. */
  closeAll(): void {
    for (const s of this.#sessions) s.destroy();
    for (const t of this.#sockets) t.socket.destroy();
    for (const s of this.#tcp) s.destroy();
  }
}
