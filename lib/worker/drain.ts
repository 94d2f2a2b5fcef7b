/**
 * @module How a worker leaves without failing a request (DESIGN §4). Connections are tracked from accept to
 * close. On drain: stop accepting (this process's handles only; the kernel socket stays with the master),
 * answer every later HTTP/1 response with `Connection: close` (decided when headers are written), close idle
 * keep-alive connections only after a quiet period and with a FIN, leave upgraded tunnels until the deadline,
 * and exit the moment nothing is left.
 */
import http from 'node:http';
import net from 'node:net';

/** An idle keep-alive connection is closed once it has been quiet this long after drain started. */
const QUIET_MS = 1000;
/** After our FIN, how long the peer gets to close its side before the socket is destroyed. */
const LINGER_MS = 2000;

interface Tracked {
  active: number;
  idleSince: number;
  upgraded: boolean;
  timer: NodeJS.Timeout | null;
}

const TRACK = Symbol('baton.track');
type TrackedSocket = net.Socket & { [TRACK]?: Tracked };

let draining = false;

/** Every response decides keep-alive when its headers are written, not when its request arrived. */
export class DrainAwareResponse extends http.ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    if (draining) this.shouldKeepAlive = false;
    return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
  }
}

export class Drainer {
  readonly #sockets = new Set<TrackedSocket>();
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

  connections(): number {
    let n = this.#sockets.size;
    for (const e of this.#extra) n += e.count();
    return n;
  }

  /** Connections that are not plain sockets of ours (e.g. HTTP/2 sessions counted elsewhere) join here. */
  addSource(source: { count(): number; closeAll(): void }): void {
    this.#extra.add(source);
  }

  watch(server: net.Server): void {
    this.#servers.push(server);
    server.on('connection', (socket: TrackedSocket) => {
      const t: Tracked = { active: 0, idleSince: Date.now(), upgraded: false, timer: null };
      socket[TRACK] = t;
      this.#sockets.add(socket);
      socket.once('close', () => {
        if (t.timer) clearTimeout(t.timer);
        this.#sockets.delete(socket);
        this.check();
      });
      if (draining) this.#scheduleIdleClose(socket);
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.#requests++;
      const t = (req.socket as TrackedSocket)[TRACK];
      if (!t) return;
      t.active++;
      if (t.timer) { clearTimeout(t.timer); t.timer = null; }
      res.once('close', () => {
        t.active--;
        t.idleSince = Date.now();
        if (draining && t.active === 0) this.#scheduleIdleClose(req.socket as TrackedSocket);
      });
    });
  }

  /** Mark a socket taken over by an Upgrade (WebSocket): it lives until the deadline or its own close. */
  markUpgraded(socket: net.Socket): void {
    const t = (socket as TrackedSocket)[TRACK];
    if (t) t.upgraded = true;
  }

  start(onEmpty: () => void): void {
    if (draining) return;
    draining = true;
    this.#onEmpty = onEmpty;
    // net.Server#close only: http.Server#close would also cut idle keep-alive connections at once, which is
    // exactly the race that makes nginx fail requests during reloads.
    for (const s of this.#servers) net.Server.prototype.close.call(s);
    for (const s of this.#sockets) if (s[TRACK]!.active === 0) this.#scheduleIdleClose(s);
    this.check();
  }

  #scheduleIdleClose(socket: TrackedSocket): void {
    const t = socket[TRACK];
    if (!t || t.upgraded || t.active > 0 || t.timer) return;
    const wait = Math.max(0, t.idleSince + QUIET_MS - Date.now());
    t.timer = setTimeout(() => {
      t.timer = null;
      if (t.active > 0 || t.upgraded || socket.destroyed) return;
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
    for (const s of this.#sockets) s.destroy();
    for (const e of this.#extra) e.closeAll();
  }
}
