/**
 * @module One server per listener, on the listening fd inherited from the master: HTTP/1.1; HTTP/1.1 and
 * HTTP/2 with prior knowledge on one cleartext port (h2c: the HTTP/1.1 server accepts, and a connection that opens
 * with the HTTP/2 preface is taken from it); or TLS, which
 * terminates in a tls.Server whose ALPN result hands each connection to an HTTP/1.1 or an HTTP/2 server.
 * Every HTTP/2 session runs on an H2Port (the drain's shutdown notice, the connection guard). A listener with
 * `proxy_protocol` or on a unix socket has a front that first finds out who the client is (proxy-protocol.ts);
 * plain TCP listeners have none and pay nothing for it. Servers accept, parse and enforce the connection-level client limits (`limits:` header size and timeout, keep-alive, requests
 * per connection, HTTP/2 streams and resets, idle sessions, the fd budget); the request handler decides the rest.
 * Every server that accepts sets TCP_NODELAY at the accept (`noDelay`), as Node's HTTP server does by default and
 * nginx's `tcp_nodelay` does: a front or a TLS server accepts for the HTTP/1.1 server, and without it a response
 * written in pieces (a streamed body) waits for the client's delayed ACK, 40 ms per response.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import type { ClientLimits, ListenerConfig } from '../config/types.js';
import { DEFAULT_LIMITS } from '../config/defaults.js';
import { DrainAwareResponse, exposeClient, type Drainer } from './drain.js';
import { H2Guard, refusedStream } from './h2-guard.js';
import { H2Port } from './h2-port.js';
import { http2Module } from './h2-codes.js';
import { createTlsServer } from './tls-server.js';
import { ConnectionEdge, copyPeerToTls } from './proxy-protocol.js';
import { closeIdleSessions, connectionBudget, h2MaxHeaderPairs } from './limits.js';
import { takeFromHttp1 } from '../util/internals.js';
import { holdContinue } from './request-body.js';
import type { Logger } from '../log/logger.js';
import { dequeued, queued } from './client-error.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** llhttp's answer to the HTTP/2 preface: it parses it as a request (`PRI * HTTP/2.0`) and stops there. */
const H2_PREFACE_PAUSE = 'HPE_PAUSED_H2_UPGRADE';

/** A parse error as Node's HTTP server gives it to 'clientError': the read it failed in, and how far it got. */
type ParseError = Error & { code?: string; rawPacket?: unknown; bytesParsed?: unknown };

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface Handlers {
  /** Every request, also those Node would answer itself (CONNECT, an unsupported Expect): see admission.ts. */
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Upgrade and HTTP/1 CONNECT requests, on the socket taken over from the parser. */
  upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void;
  clientError(err: Error & { code?: string }, socket: net.Socket): void;
}

/**
 * Pipelined HTTP/1.1 requests one at a time, as nginx does. Node emits every request it parses at once, so a
 * request pipelined behind one that ends the connection (refused with 400/413/431, `Connection: close`, an
 * HTTP/1.0 request) would still be proxied, its answer then lost. RFC 9112 §9.6: after a response that closes
 * the connection no further request on it is processed; here it is not even sent upstream. Costs one
 * property read for a request that is not pipelined.
 */
function inOrder(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // Node gives the connection to a response at once unless an earlier one still holds it; a queued one
    // gets it ('socket') when the earlier one finished and kept the connection alive, and never otherwise.
    if (res.socket !== null) {
      handle(req, res);
      return;
    }
    const socket = req.socket;
    queued(socket, res);
    res.once('socket', () => {
      dequeued(socket, res);
      handle(req, res);
    });
  };
}

/**
 * What every server (HTTP/1.1 parser or HTTP/1.1 over TLS) does with HTTP/1.1 requests besides 'request'. The
 * request handler answers what Node would answer itself, unlogged: a missing Host (`requireHostHeader` off), an
 * unsupported Expect (417, and a close: Node's own keeps the connection with the body unread), CONNECT (405:
 * without a listener Node just drops the socket).
 */
function h1Events(server: net.Server, handlers: Handlers, request: Handlers['request'], clientError: Handlers['clientError']): void {
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', clientError);
  server.on('connect', handlers.upgrade);
  server.on('checkExpectation', request);
}

/**
 * The HTTP/1.1 server for `limits`. Node enforces: `maxHeaderSize` (431 through clientError), `headersTimeout`
 * (408 through clientError, checked every `connectionsCheckingInterval`: 30 s by default, far too coarse for a
 * 10 s limit), `keepAliveTimeout` (the socket closes 1 s after the advertised value), `maxRequestsPerSocket`
 * (Connection: close on the last response; a request pipelined past it gets 503). The last one and
 * `maxHeadersCount` are server properties only, not `createServer` options.
 */
function h1Server(handlers: Handlers, limits: ClientLimits, clientError: Handlers['clientError'] = handlers.clientError): http.Server {
  const server = http.createServer({
    ServerResponse: DrainAwareResponse as unknown as typeof http.ServerResponse,
    // admission.ts answers a missing Host, with an access-log line (Node's own 400 has none).
    requireHostHeader: false,
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headerTimeout,
    // Large uploads may take long; body inactivity is bounded by body_timeout instead.
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headerTimeout / 4))),
    keepAliveTimeout: limits.keepaliveTimeout,
  });
  server.maxRequestsPerSocket = limits.keepaliveRequests;
  // Node truncates req.headers past this but keeps rawHeaders whole; admission answers 431 (admission.ts).
  server.maxHeadersCount = limits.maxHeaders + 1;
  const request = inOrder(handlers.request);
  server.on('request', request);
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    holdContinue(req);
    request(req, res);
  });
  h1Events(server, handlers, request, clientError);
  return server;
}

/**
 * The HTTP/2 server of a listener. SETTINGS_MAX_CONCURRENT_STREAMS is advertised: nghttp2 refuses the streams
 * over it (REFUSED_STREAM while the client has not acknowledged the setting; a connection error once it has);
 * the guard (h2-guard.ts) adds the limits nghttp2 lacks: resets, and streams per client. nghttp2 resets a stream
 * past `maxHeaderListPairs` (ENHANCE_YOUR_CALM); the margin lets admission answer 431 first, as for HTTP/1.1. SETTINGS_MAX_HEADER_LIST_SIZE is left at its default: advertising max_header_size
 * would turn an oversized header list into a stream reset as well, instead of a 431.
 */
function h2Server(handlers: Handlers, limits: ClientLimits, guard: H2Guard): http2.Http2Server {
  const server = http2Module().createServer({
    maxHeaderListPairs: h2MaxHeaderPairs(limits),
    settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams },
  });
  guard.attach(server);
  const request = (req: AnyRequest, res: AnyResponse) => {
    if (!refusedStream((req as http2.Http2ServerRequest).stream)) handlers.request(req as http.IncomingMessage, res as http.ServerResponse);
  };
  server.on('request', request);
  server.on('checkContinue', (req: AnyRequest, res: AnyResponse) => {
    holdContinue(req as http.IncomingMessage);
    request(req, res);
  });
  // CONNECT (405) and an unsupported Expect (417) are answered, and logged, by the request handler.
  server.on('connect', request);
  server.on('checkExpectation', request);
  // A broken session or stream concerns that connection only.
  server.on('sessionError', ignore);
  server.on('session', (session: http2.ServerHttp2Session) => {
    session.on('error', ignore);
    exposeClient(session);
  });
  closeIdleSessions(server, limits.keepaliveTimeout);
  return server;
}

function ignore(): void {}

/**
 * A connection of an h2c listener that opened with the HTTP/2 preface, which the HTTP/1.1 parser stopped at: taken
 * from the HTTP/1.1 server (takeFromHttp1) and given to the HTTP/2 server with the preface and the rest of that read
 * put back. The preface counts only where the connection opens (RFC 9113 §3.4): after HTTP/1.1 requests it is a bad
 * request, as it is on a listener without h2c. False when the connection was not taken.
 *
 * Why not read the first bytes and decide, as the listeners with a front do (sniff): a connection read once in
 * JavaScript is parsed there, its first request too, instead of by the parser reading the handle from C++: in
 * `Connection: close` traffic, 5-7 % more CPU per request (10-13 µs per connection, one worker). An HTTP/2
 * connection, which lives long, pays for the take-over once.
 */
function takeH2(err: ParseError, socket: net.Socket, listener: net.Server, h2: http2.Http2Server, drainer: Drainer): boolean {
  const raw = err.rawPacket;
  const parsed = err.bytesParsed;
  if (!Buffer.isBuffer(raw) || typeof parsed !== 'number') return false;
  // The preface may have come in several reads: this one ends with it at `parsed`, then holds the first frames.
  const rest = raw.subarray(parsed);
  // A connection handed over by another worker reads from 0 here, but served HTTP/1.1 there.
  if (socket.bytesRead - rest.length !== H2_PREFACE.length || drainer.handedIn(socket)) return false;
  const taken = takeFromHttp1(socket);
  if (taken === null) return false;
  // Before the old socket's close (next tick) could end a drain: the session's connection is in flight.
  drainer.adopt(taken, listener);
  taken.unshift(rest.length === 0 ? H2_PREFACE : Buffer.concat([H2_PREFACE, rest]));
  h2.emit('connection', new H2Port(taken));
  return true;
}

/**
 * On a listener with a front (PROXY protocol, unix socket), whose first bytes are read in JavaScript anyway: read
 * just enough of a cleartext connection to tell the HTTP/2 preface from an HTTP/1 request line, then put the
 * bytes back. Paused-mode reads ('readable'), not 'data': a stream switched to flowing mode would lose
 * the unshifted bytes to the HTTP/1 parser, which reads from the handle itself.
 */
function sniff(socket: net.Socket, timeout: number, decide: (h2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeout);
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
    }
    const n = Math.min(seen.length, H2_PREFACE.length);
    if (n === 0) return;
    const prefix = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (prefix && seen.length < H2_PREFACE.length) return; // could still be either: wait for more
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('close', onClose);
    socket.unshift(seen);
    decide(prefix);
  };
  const onClose = () => clearTimeout(timer);
  socket.on('readable', onReadable);
  socket.on('close', onClose);
  socket.on('error', ignore);
  // Bytes put back after a PROXY header are buffered already: no 'readable' will announce them.
  if (socket.readableLength > 0) onReadable();
}

/** A drop log line at most this often per server: a flood of them would make things worse. */
const DROP_LOG_MS = 10_000;

/**
 * Keep this worker under its file descriptor limit (see `connectionBudget`): past the budget Node closes a new
 * connection at once ('drop') instead of taking a descriptor that an upstream connection will need; the
 * other workers keep accepting from the shared queue.
 */
function budgetConnections(server: net.Server, log: Logger | undefined): void {
  const budget = connectionBudget();
  if (budget === null) return;
  server.maxConnections = budget;
  let loggedAt = 0;
  let dropped = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - loggedAt < DROP_LOG_MS) return;
    loggedAt = now;
    log?.error({ max_connections: budget, dropped }, 'connection limit reached (file descriptors): new connections are closed at once; raise LimitNOFILE / ulimit -n');
    dropped = 0;
  });
}

/** One HTTP/2 guard per worker (its Drainer): the per-client counts span every listener. */
const guards = new WeakMap<Drainer, H2Guard>();

function guardOf(drainer: Drainer, limits: ClientLimits, log: Logger | undefined): H2Guard {
  let guard = guards.get(drainer);
  if (guard === undefined) {
    guard = new H2Guard(limits.http2MaxConcurrentStreams, log);
    guards.set(drainer, guard);
  }
  return guard;
}

/** The server whose `listen({fd})` takes the inherited socket. */
export function createServer(listener: ListenerConfig, handlers: Handlers, drainer: Drainer, limits: ClientLimits = DEFAULT_LIMITS, log?: Logger): net.Server {
  const server = createProtocolServer(listener, handlers, drainer, limits, log);
  budgetConnections(server, log);
  return server;
}

/**
 * A front that accepts for `next`: it finds out who the client is (`edge`), then hands the connection on. The
 * drainer counts connections from this accept, so that a drain waits for one whose PROXY header is on its way.
 */
function edgeFront(edge: ConnectionEdge, next: (socket: net.Socket) => void, h1: http.Server): net.Server {
  const front = net.createServer({ noDelay: true }, (socket) => edge.accept(socket, () => next(socket)));
  edge.watch(front);
  // Node starts the HTTP/1 header-timeout sweep on 'listening', and only the front listens.
  front.once('listening', () => h1.emit('listening'));
  return front;
}

function createProtocolServer(listener: ListenerConfig, handlers: Handlers, drainer: Drainer, limits: ClientLimits, log: Logger | undefined): net.Server {
  const edge = ConnectionEdge.for(listener, limits.headerTimeout, log);
  if (!listener.tls && listener.h2c && edge === null) {
    const h2 = h2Server(handlers, limits, guardOf(drainer, limits, log));
    const h1: http.Server = h1Server(handlers, limits, (err: ParseError, socket: net.Socket) => {
      if (err.code !== H2_PREFACE_PAUSE || !takeH2(err, socket, h1, h2, drainer)) handlers.clientError(err, socket);
    });
    drainer.watch(h1, [h1, h2]);
    return h1;
  }
  const h1 = h1Server(handlers, limits);
  if (!listener.tls && !listener.h2c) {
    if (edge === null) {
      drainer.watch(h1);
      return h1;
    }
    const front = edgeFront(edge, (socket) => h1.emit('connection', socket), h1);
    drainer.watch(front, [h1]);
    return front;
  }
  const h2 = h2Server(handlers, limits, guardOf(drainer, limits, log));
  if (listener.tls) {
    const server = createTlsServer(listener.tls, limits.headerTimeout);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      if (edge !== null) copyPeerToTls(socket);
      if (socket.alpnProtocol === 'h2') h2.emit('connection', new H2Port(socket));
      else h1.emit('connection', socket);
    });
    if (edge === null) {
      // h1 never listens itself: Node starts its header-timeout sweep on 'listening'.
      server.once('listening', () => h1.emit('listening'));
      drainer.watch(server, [h1, h2], true);
      return server;
    }
    // The front accepts, the TLS server handshakes: the drainer sees both through the front.
    const front = edgeFront(edge, (socket) => server.emit('connection', socket), h1);
    server.on('secureConnection', (socket: tls.TLSSocket) => front.emit('secureConnection', socket));
    drainer.watch(front, [h1, h2], true);
    return front;
  }
  // h2c behind a front (edge is not null here): the front has read the connection's first bytes in JavaScript.
  const protocol = (socket: net.Socket) => sniff(socket, limits.headerTimeout, (isH2) => {
    drainer.markH2(socket, isH2);
    if (isH2) h2.emit('connection', new H2Port(socket));
    else h1.emit('connection', socket);
  });
  const front = edgeFront(edge!, protocol, h1);
  drainer.watch(front, [h1, h2]);
  return front;
}
