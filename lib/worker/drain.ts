/**
 * @module How a worker leaves without failing a request (DESIGN §4). Connections are tracked from the TCP accept
 * to the close, TLS handshakes included. On drain: stop accepting (this process's handles only; the kernel socket
 * stays with the master), answer every later HTTP/1 response with `Connection: close` (decided when headers are
 * written), close idle keep-alive connections only after a quiet period and with a FIN, let TLS handshakes in
 * progress finish (bounded by the handshake timeout, `header_timeout`), give every HTTP/2 session the two-phase
 * GOAWAY, leave upgraded tunnels until the deadline, and exit the moment nothing is left. With a Mover (hand-off on),
 * an idle cleartext HTTP/1 connection is offered to a serving worker instead, and closed only if it stays; while it
 * waits for its turn it is served as usual, keep-alive (it is not shed by closing: it moves when idle again).
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import { markProcessDraining } from './drain-response.js';
import { parserBegun } from '../util/internals.js';
import { Sessions } from './drain-h2.js';
import { REQUEST_EVENTS, TAKEOVER_EVENTS, TIMINGS, type DrainTimings, type Mover, type MoveResult, type Parser } from './drain-contract.js';

export type { DrainTimings, Mover, MoveResult, Parser } from './drain-contract.js';

export { DrainAwareResponse } from './drain-response.js';
export { exposeClient } from './drain-h2.js';

/** What a socket needs to be closed at the right time; found from the socket, its requests and its session. */
interface Tracked {
  readonly drainer: Drainer;
  readonly socket: net.Socket;
  /** The listening server that accepted it (or took it in from another worker). */
  readonly listener: net.Server;
  readonly tls: boolean;
  active: number;
  idleSince: number;
  /** Taken over by an Upgrade (WebSocket) or by an HTTP/2 session: not ours to idle-close. */
  owned: boolean;
  timer: NodeJS.Timeout | null;
  /** Being offered to another worker (its reads are held once its turn comes). */
  moving: boolean;
  /** Waiting for a hand-off: found idle during the drain; its responses keep it open. */
  queued: boolean;
  /** The offer failed: it drains here. */
  stays: boolean;
  /** Handed in by another worker and idle since: closed after keepalive_timeout unless a request comes. */
  handedIn: boolean;
}

/** A connection not idle when its turn came, with no request either (bytes still flushing): looked at again then. */
const BUSY_RETRY_MS = 50;

const TRACK = Symbol('baton.track');
type TrackedSocket = net.Socket & { [TRACK]?: Tracked };
type TrackedResponse = http.ServerResponse & { [TRACK]?: Tracked };
/** The TCP socket under a TLS one. */
type TcpSocket = net.Socket & { [TRACK]?: Drainer };

export class Drainer {
  /** Connections whose protocol socket we know: cleartext from the accept, TLS from the end of the handshake. */
  readonly #sockets = new Set<Tracked>();
  /** TCP connections of TLS listeners, from the accept: each is a handshake until its TLS socket is tracked. */
  readonly #tcp = new Set<net.Socket>();
  /** TLS sockets among #sockets. */
  #secured = 0;
  readonly #sessions: Sessions;
  readonly #servers: net.Server[] = [];
  #onEmpty: (() => void) | null = null;
  #requests = 0;
  #draining = false;
  #mover: Mover | null = null;
  readonly #timings: DrainTimings;

  constructor(timings: DrainTimings = TIMINGS) {
    this.#timings = timings;
    this.#sessions = new Sessions(timings.goawayGraceMs);
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
    server.on(tls ? 'secureConnection' : 'connection', (socket: TrackedSocket) => this.#track(socket, tls, server));
    const onRequest = (req: http.IncomingMessage, res: TrackedResponse) => this.#request(req, res);
    const onTakeover = (req: http.IncomingMessage, socket: net.Socket) => this.markUpgraded(socket);
    for (const p of protocols) {
      // Node emits exactly one of these per request: a request that came with `Expect` is no less in flight.
      for (const event of REQUEST_EVENTS) p.on(event, onRequest);
      for (const event of TAKEOVER_EVENTS) p.on(event, onTakeover);
      p.on('session', (session: http2.ServerHttp2Session) => this.#sessions.add(session, this.#draining));
    }
  }

  #request(req: http.IncomingMessage, res: TrackedResponse): void {
    this.#requests++;
    if (req.httpVersionMajor !== 1) return; // HTTP/2 streams live and die with their session
    const t = (req.socket as TrackedSocket)[TRACK];
    if (!t) return;
    t.active++;
    if (t.timer) { clearTimeout(t.timer); t.timer = null; }
    if (t.handedIn) {
      t.handedIn = false;
      t.socket.setTimeout(0);
    }
    res[TRACK] = t;
    res.once('close', Drainer.#onResponseClose);
  }

  #track(socket: TrackedSocket, tls: boolean, listener: net.Server, owned = false): Tracked {
    const t: Tracked = {
      drainer: this, socket, listener, tls, active: 0, idleSince: Date.now(), owned: owned || (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2',
      timer: null, moving: false, queued: false, stays: false, handedIn: false,
    };
    socket[TRACK] = t;
    this.#sockets.add(t);
    if (tls) this.#secured++;
    socket.once('close', tls ? Drainer.#onSecureClose : Drainer.#onClose);
    if (this.#draining) this.#idle(t);
    return t;
  }

  /**
   * A connection another worker handed over, idle (its server's 'connection' tracked it): like any idle keep-alive
   * connection it is closed after `keepaliveMs` unless a request comes first.
   */
  markHandedIn(socket: net.Socket, keepaliveMs: number): void {
    const t = (socket as TrackedSocket)[TRACK];
    if (!t) return;
    t.handedIn = true;
    socket.setTimeout(keepaliveMs);
    socket.once('timeout', Drainer.#onHandedInTimeout);
  }

  /** Handed over by another worker and no request served here yet: it served requests there, so it is not new. */
  handedIn(socket: net.Socket): boolean {
    return (socket as TrackedSocket)[TRACK]?.handedIn === true;
  }

  /**
   * A connection of `listener` that something else owns (a tunnel handed over by another worker, an HTTP/2 session
   * taken from the HTTP/1.1 server): the drain never idles or moves it.
   */
  adopt(socket: net.Socket, listener: net.Server): void {
    // Owned from the start: during a drain, #track would otherwise treat it as an idle connection at once.
    this.#track(socket as TrackedSocket, false, listener, true);
  }

  /** The connection is being offered to another worker: nothing may be written on it here. */
  moving(socket: net.Socket): boolean {
    return (socket as TrackedSocket)[TRACK]?.moving === true;
  }

  /** The listening server a tracked connection belongs to. */
  listenerOf(socket: net.Socket): net.Server | null {
    return (socket as TrackedSocket)[TRACK]?.listener ?? null;
  }

  /** Offer idle cleartext HTTP/1 connections to `mover` during the drain, instead of closing them (hand-off on). */
  useMover(mover: Mover | null): void {
    this.#mover = mover;
  }

  /** A response on this connection keeps it open: it waits for a hand-off (drain-response.ts). */
  static #waitsForHandoff(socket: net.Socket | null): boolean {
    const t = (socket as TrackedSocket | null)?.[TRACK];
    return t !== undefined && t.queued && !t.stays;
  }

  static #onHandedInTimeout(this: TrackedSocket): void {
    const t = this[TRACK];
    if (t && t.handedIn && t.active === 0) this.destroy();
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
    if (t.drainer.#draining && t.active === 0) t.drainer.#idle(t);
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
    markProcessDraining(Drainer.#waitsForHandoff);
    this.#onEmpty = onEmpty;
    // net.Server#close only: http.Server#close would also cut idle keep-alive connections at once, which is
    // exactly the race that makes nginx fail requests during reloads.
    for (const s of this.#servers) net.Server.prototype.close.call(s);
    for (const t of this.#sockets) if (t.active === 0) this.#idle(t);
    this.#sessions.goawayAll();
    this.check();
  }

  /**
   * A connection with nothing in flight during the drain: offered to a serving worker when it can move (cleartext,
   * not failed before), else closed once quiet. A response that closes its connection leaves nothing to move: the
   * socket is ending.
   */
  #idle(t: Tracked): void {
    if (t.owned || t.active > 0 || t.timer || t.moving) return;
    const mover = this.#mover;
    // A request begun before it was found idle is in flight: answered with Connection: close, as any other.
    if (mover === null || t.tls || t.stays || t.socket.writableEnded || (!t.queued && parserBegun(t.socket))) {
      this.#scheduleIdleClose(t);
      return;
    }
    t.queued = true;
    t.moving = true;
    const settle = (r: MoveResult) => {
      t.moving = false;
      if (r === 'failed') {
        t.stays = true;
        // Its reads were held: a request may wait in the kernel, read only now. Quiet counts from here.
        t.idleSince = Date.now();
        this.#scheduleIdleClose(t);
      } else if (r === 'busy' && t.active === 0 && !t.socket.destroyed) {
        t.timer = setTimeout(() => {
          t.timer = null;
          this.#idle(t);
        }, BUSY_RETRY_MS);
      }
    };
    mover.move(t.socket, t.listener).then(settle, () => settle('failed'));
  }

  #scheduleIdleClose(t: Tracked): void {
    if (t.owned || t.active > 0 || t.timer || t.moving) return;
    const wait = Math.max(0, t.idleSince + this.#timings.quietMs - Date.now());
    t.timer = setTimeout(() => {
      t.timer = null;
      const socket = t.socket;
      if (t.active > 0 || t.owned || socket.destroyed) return;
      if (socket.readableLength > 0 || parserBegun(socket)) {
        // Bytes of a next request are here, in the socket's buffer or already in the parser: let it be served (with
        // Connection: close) instead of cutting it; a request that never completes meets header_timeout.
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
    this.#sessions.destroyAll();
    for (const t of this.#sockets) t.socket.destroy();
    for (const s of this.#tcp) s.destroy();
  }
}
