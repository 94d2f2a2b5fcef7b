/**
 * @module Who the client of a connection is, decided once per connection before TLS or HTTP: the address a PROXY
 * protocol header carries (listeners with `proxy_protocol: true`), `unix:` for a unix socket listener, the TCP peer
 * otherwise. The decision is written into the socket itself (its `remoteAddress`, `remotePort`, `remoteFamily`), so
 * that everything reading them (X-Forwarded-For, logs, metrics, access rules, rate limits, the HTTP/2 guard, TLS
 * and WebSocket code) sees the client without knowing how it was found. A connection whose header is missing,
 * malformed or late is closed; the failures are logged at most every 10 s per worker, with counts, and what is
 * pending when the listener has closed (a drain: reload, upgrade, graceful stop) is logged then, before the worker exits.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from '../log/logger.js';
import { setPeer, tlsParent } from '../util/internals.js';
import { parseProxyHeader, UNIX_PEER, type ProxiedPeer } from './proxy-header.js';

export type { ProxiedPeer };

const kEdge = Symbol('baton.edge');
/** Set once the client is known: a connection handed over from another worker is not asked again. */
const kKnown = Symbol('baton.edge.known');

type EdgeSocket = net.Socket & { [kEdge]?: HeaderRead; [kKnown]?: true };

/** Failure log lines at most this often per worker (a flood of bad connections must not flood the log). */
const FAILURE_LOG_MS = 10_000;

/** Connections closed for want of a valid header, summed up between log lines. */
class Failures {
  #counts = new Map<string, number>();
  #loggedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #last = '';

  constructor(private readonly listen: string, private readonly log: Logger | undefined) {}

  add(reason: string, from: string | undefined): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    this.#last = from ?? 'unknown';
    const wait = this.#loggedAt + FAILURE_LOG_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), wait).unref();
  }

  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#counts.size === 0) return;
    this.#loggedAt = Date.now();
    const reasons = Object.fromEntries(this.#counts);
    let closed = 0;
    for (const n of this.#counts.values()) closed += n;
    this.#counts.clear();
    this.log?.warn({ listener: this.listen, closed, reasons, last_peer: this.#last }, 'PROXY protocol: connections without a valid header closed');
  }
}

/** One connection waiting for its header: paused-mode reads, so that no byte after the header is lost. */
class HeaderRead {
  seen: Buffer = Buffer.alloc(0);
  readonly timer: NodeJS.Timeout;

  constructor(readonly edge: ConnectionEdge, readonly socket: EdgeSocket, readonly next: () => void) {
    this.timer = setTimeout(onTimeout, edge.timeoutMs, socket);
  }
}

// Listeners shared by every connection (`this` is the socket): no closure per connection.
function onReadable(this: EdgeSocket): void {
  const read = this[kEdge]!;
  for (let chunk = this.read() as Buffer | null; chunk !== null; chunk = this.read() as Buffer | null) {
    read.seen = read.seen.length ? Buffer.concat([read.seen, chunk]) : chunk;
  }
  const verdict = parseProxyHeader(read.seen);
  if (verdict.kind === 'partial') return;
  detach(this, read);
  if (verdict.kind === 'invalid') return read.edge.fail(this, verdict.reason);
  if (verdict.peer !== null) known(this, verdict.peer);
  else if (read.edge.unix) known(this, UNIX_PEER);
  else this[kKnown] = true;
  if (read.seen.length > verdict.length) this.unshift(read.seen.subarray(verdict.length));
  read.next();
}

/** 'end' (a FIN) or 'close' (a reset) before the header was complete. */
function onGone(this: EdgeSocket): void {
  const read = this[kEdge];
  if (read === undefined) return;
  detach(this, read);
  read.edge.fail(this, 'closed before a complete header');
}

function onTimeout(socket: EdgeSocket): void {
  const read = socket[kEdge];
  if (read === undefined) return;
  detach(socket, read);
  read.edge.fail(socket, 'no complete header within header_timeout');
}

function onError(): void {}

function detach(socket: EdgeSocket, read: HeaderRead): void {
  clearTimeout(read.timer);
  socket.off('readable', onReadable);
  socket.off('end', onGone);
  socket.off('close', onGone);
  socket[kEdge] = undefined;
}

function known(socket: EdgeSocket, peer: ProxiedPeer): void {
  setPeer(socket, peer.address, peer.port, peer.family);
  socket[kKnown] = true;
}

/**
 * A connection taken over from another process (a hand-off between workers): its client is the one the old
 * worker knew (from its PROXY header, or `unix:`), and it sends no header again.
 */
export function adoptPeer(socket: net.Socket, peer: ProxiedPeer | null): void {
  if (peer !== null) known(socket, peer);
  else (socket as EdgeSocket)[kKnown] = true;
}

/**
 * Its PROXY header is still being read: bytes of it may sit in this process's buffer, so the connection cannot
 * leave it (a hand-off would lose them, and the receiver would take the rest for a request).
 */
export function edgeReading(socket: net.Socket): boolean {
  return (socket as EdgeSocket)[kEdge] !== undefined;
}

/** The client a connection's socket names now, to carry it along a hand-off (null: the TCP peer is the client). */
export function peerOf(socket: net.Socket): ProxiedPeer | null {
  if (!(socket as EdgeSocket)[kKnown]) return null;
  const { remoteAddress, remotePort, remoteFamily } = socket;
  if (remoteAddress === undefined) return null;
  return { address: remoteAddress, port: remotePort, family: remoteFamily === 'IPv6' ? 'IPv6' : remoteFamily === 'IPv4' ? 'IPv4' : 'unix' };
}

/** What a listener does before TLS or HTTP: read a PROXY header, or name a unix client; null when neither. */
export class ConnectionEdge {
  readonly #failures: Failures;

  private constructor(readonly proxy: boolean, readonly unix: boolean, readonly timeoutMs: number, listen: string, log: Logger | undefined) {
    this.#failures = new Failures(listen, log);
  }

  static for(listener: { readonly proxyProtocol: boolean; readonly address: { readonly key: string; readonly family: unknown } }, timeoutMs: number, log: Logger | undefined): ConnectionEdge | null {
    const unix = listener.address.family === 'unix';
    if (!listener.proxyProtocol && !unix) return null;
    return new ConnectionEdge(listener.proxyProtocol, unix, timeoutMs, listener.address.key, log);
  }

  /**
   * `server` accepts this edge's connections: once it has closed and its last connection is gone (a drain), no
   * failure can follow, and the counts still waiting for the next log line are logged now: the worker exits next.
   */
  watch(server: net.Server): void {
    server.once('close', () => this.#failures.flush());
  }

  /** Find out who the client of `socket` is, then call `next` (never, if the connection is refused). */
  accept(socket: net.Socket, next: () => void): void {
    const s = socket as EdgeSocket;
    if (s[kKnown]) return next();
    if (!this.proxy) {
      known(s, UNIX_PEER);
      return next();
    }
    s[kEdge] = new HeaderRead(this, s, next);
    s.on('readable', onReadable);
    s.on('end', onGone);
    s.on('close', onGone);
    s.on('error', onError);
  }

  fail(socket: net.Socket, reason: string): void {
    this.#failures.add(reason, socket.remoteAddress);
    socket.destroy();
  }
}

/** A TLS socket over a connection whose client is known: it names the same client (its own peer is the TCP one). */
export function copyPeerToTls(socket: tls.TLSSocket): void {
  const raw = tlsParent(socket);
  if (raw === undefined || !(raw as EdgeSocket)[kKnown]) return;
  setPeer(socket, raw.remoteAddress, raw.remotePort, raw.remoteFamily);
}
