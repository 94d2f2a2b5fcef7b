/**
 * @module How a worker leaves without failing a request (DESIGN §4). Connections are tracked from accept to
 * close. On drain: stop accepting (this process's handles only; the kernel socket stays with the master),
 * answer every later HTTP/1 response with `Connection: close` (decided when headers are written), close idle
 * keep-alive connections only after a quiet period and with a FIN, give every HTTP/2 session the two-phase
 * GOAWAY, leave upgraded tunnels until the deadline, and exit the moment nothing is left.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { H2Port } from './h2-port.js';
import { maxRequestsReached, sessionSocket, wrappedStream } from '../util/internals.js';

/** An idle keep-alive connection is closed once it has been quiet this long after drain started. */
const QUIET_MS = 1000;
/** After our FIN, how long the peer gets to close its side before the socket is destroyed. */
const LINGER_MS = 2000;
/** Between GOAWAY(2^31-1) and the final GOAWAY: about one round trip, for streams already on the wire. */
const GOAWAY_GRACE_MS = 300;
const MAX_STREAM_ID = 2 ** 31 - 1;

interface Tracked {
  active: number;
  idleSince: number;
  /** Taken over by an Upgrade (WebSocket) or by an HTTP/2 session: not ours to idle-close. */
  owned: boolean;
  timer: NodeJS.Timeout | null;
}

const TRACK = Symbol('baton.track');
type TrackedSocket = net.Socket & { [TRACK]?: Tracked };

let draining = false;

/** Over an H2Port a session's socket is a JSStreamSocket around it. */
function portOf(session: http2.ServerHttp2Session): H2Port | undefined {
  const socket = sessionSocket(session);
  const stream = socket && wrappedStream(socket);
  return stream instanceof H2Port ? stream : undefined;
}

/**
 * A session over an H2Port sees a JSStreamSocket, which knows no addresses: give it the client's, which the
 * request handler reads through `req.socket` (X-Forwarded-For, X-Forwarded-Proto, the access log).
 */
export function exposeClient(session: http2.ServerHttp2Session): void {
  const port = portOf(session);
  if (!port) return;
  const js = sessionSocket(session)!;
  Object.defineProperties(js, {
    remoteAddress: { get: () => port.remoteAddress, configurable: true },
    remotePort: { get: () => port.remotePort, configurable: true },
    remoteFamily: { get: () => port.remoteFamily, configurable: true },
    encrypted: { get: () => port.encrypted, configurable: true },
    alpnProtocol: { get: () => port.alpnProtocol, configurable: true },
  });
}

/** Every response decides keep-alive when its headers are written, not when its request arrived. */
export class DrainAwareResponse extends http.ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    // Node marks the last response allowed by maxRequestsPerSocket (keepalive_requests) with Connection: close
    // but leaves the connection open for the client to close; nginx closes it, and so do we.
    if (draining || maxRequestsReached(this)) this.shouldKeepAlive = false;
    return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
  }
}

export class Drainer {
  readonly #sockets = new Set<TrackedSocket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #servers: net.Server[] = [];
  readonly #extra = new Set<{ count(): number; closeAll(): void }>();
  #onEmpty: (() => void) | null = null;
  #requests = 0;

  get draining(): boolean {
    return draining;
  }

  get requests(): number {
    return this.#requests;
  }

  /** HTTP/2 sessions open now (each also counts as a connection). */
  sessions(): number {
    return this.#sessions.size;
  }

  connections(): number {
    let n = this.#sockets.size;
    for (const e of this.#extra) n += e.count();
    return n;
  }

  /** Connections counted elsewhere (e.g. upstream tunnels still closing) join here. */
  addSource(source: { count(): number; closeAll(): void }): void {
    this.#extra.add(source);
  }

  /**
   * Track the connections `server` accepts (`event`: 'connection', or 'secureConnection' for TLS, so the
   * socket is the one requests see), and the requests and HTTP/2 sessions of `protocols` (the servers that
   * parse those connections; the server itself unless an h2c front hands them on).
   */
  watch(server: net.Server, event: 'connection' | 'secureConnection', protocols: readonly net.Server[] = [server]): void {
    this.#servers.push(server);
    server.on(event, (socket: TrackedSocket) => {
      const t: Tracked = { active: 0, idleSince: Date.now(), owned: false, timer: null };
      socket[TRACK] = t;
      if ((socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2') t.owned = true;
      this.#sockets.add(socket);
      socket.once('close', () => {
        if (t.timer) clearTimeout(t.timer);
        this.#sockets.delete(socket);
        this.check();
      });
      if (draining) this.#scheduleIdleClose(socket);
    });
    for (const p of protocols) {
      p.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
        this.#requests++;
        if (req.httpVersionMajor !== 1) return; // HTTP/2 streams live and die with their session
        const socket = req.socket as TrackedSocket;
        const t = socket[TRACK];
        if (!t) return;
        t.active++;
        if (t.timer) { clearTimeout(t.timer); t.timer = null; }
        res.once('close', () => {
          t.active--;
          t.idleSince = Date.now();
          if (draining && t.active === 0) this.#scheduleIdleClose(socket);
        });
      });
      p.on('session', (session: http2.ServerHttp2Session) => {
        this.#sessions.add(session);
        session.once('close', () => this.#sessions.delete(session));
        if (draining) this.#goaway(session);
      });
    }
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
    if (draining) return;
    draining = true;
    this.#onEmpty = onEmpty;
    // net.Server#close only: http.Server#close would also cut idle keep-alive connections at once, which is
    // exactly the race that makes nginx fail requests during reloads.
    for (const s of this.#servers) net.Server.prototype.close.call(s);
    for (const s of this.#sockets) if (s[TRACK]!.active === 0) this.#scheduleIdleClose(s);
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
    if (!portOf(session)?.notice()) {
      try {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      } catch {
        /* the session is going away by itself */
      }
    }
    setTimeout(() => {
      if (!session.closed && !session.destroyed) session.close();
    }, GOAWAY_GRACE_MS).unref();
  }

  #scheduleIdleClose(socket: TrackedSocket): void {
    const t = socket[TRACK];
    if (!t || t.owned || t.active > 0 || t.timer) return;
    const wait = Math.max(0, t.idleSince + QUIET_MS - Date.now());
    t.timer = setTimeout(() => {
      t.timer = null;
      if (t.active > 0 || t.owned || socket.destroyed) return;
      if (socket.readableLength > 0) {
        // Bytes of a next request are waiting: let it be served (with Connection: close) instead of resetting it.
        t.idleSince = Date.now();
        this.#scheduleIdleClose(socket);
        return;
      }
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    }, wait);
  }

  check(): void {
    if (draining && this.#onEmpty && this.connections() === 0) {
      const done = this.#onEmpty;
      this.#onEmpty = null;
      done();
    }
  }

  /** The hard limit: close whatever is left. */
  closeAll(): void {
    for (const s of this.#sessions) s.destroy();
    for (const s of this.#sockets) s.destroy();
    for (const e of this.#extra) e.closeAll();
  }
}
