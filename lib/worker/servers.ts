/**
 * @module One server per listener, on the listening fd inherited from the master: HTTP/1.1; HTTP/1.1 and
 * HTTP/2 with prior knowledge on one cleartext port (h2c: the connection preface decides); or TLS with SNI and
 * ALPN offering h2 and http/1.1. Servers accept, parse and enforce the connection-level client limits
 * (`limits:` header size and timeout, keep-alive, requests per connection, HTTP/2 idle sessions, the fd
 * budget); the request handler decides everything else.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { ClientLimits, ListenerConfig, TlsConfig } from '../config/types.js';
import { DEFAULT_LIMITS } from '../config/sections/limits.js';
import { DrainAwareResponse, exposeClient, type Drainer } from './drain.js';
import { H2Port } from './h2-port.js';
import { closeIdleSessions, connectionBudget, h2MaxHeaderPairs } from './limits.js';
import type { Logger } from '../log/logger.js';
import { holdContinue } from './request-body.js';
import { dequeued, queued } from './client-error.js';

/** A client must send the TLS handshake or the h2c/h1 first bytes within this. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** Mozilla "intermediate": forward secrecy and AEAD only, TLS 1.2+ (TLS 1.3 suites are always on). */
const CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

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
 * The HTTP/1.1 settings of `limits`, as http.Server properties (the TLS server is an http2 server with
 * allowHTTP1, which reads the same properties for its HTTP/1.1 connections but takes none of them as options).
 * Node enforces: `maxHeaderSize` (431 through clientError), `headersTimeout` (408 through clientError, checked
 * every `connectionsCheckingInterval`: 30 s by default, far too coarse for a 10 s limit), `keepAliveTimeout`
 * (the socket closes 1 s after the advertised value), `maxRequestsPerSocket` (Connection: close on the last
 * response; a request pipelined past it gets 503).
 */
function h1Settings(limits: ClientLimits): Record<string, number> {
  return {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headerTimeout,
    // Large uploads may take long; body inactivity is bounded by body_timeout instead.
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headerTimeout / 4))),
    keepAliveTimeout: limits.keepaliveTimeout,
    maxRequestsPerSocket: limits.keepaliveRequests,
    // Node truncates req.headers past this but keeps rawHeaders whole; admission answers 431 (admission.ts).
    maxHeadersCount: limits.maxHeaders + 1,
  };
}

function sniCallback(conf: TlsConfig): ((servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void) | undefined {
  if (conf.sni.length === 0) return undefined;
  const exact = new Map<string, tls.SecureContext>();
  const wild: [string, tls.SecureContext][] = [];
  for (const entry of conf.sni) {
    const ctx = tls.createSecureContext({ cert: entry.cert, key: entry.key, minVersion: 'TLSv1.2', ciphers: CIPHERS });
    for (const name of entry.names) {
      if (name.startsWith('*.')) wild.push([name.slice(1), ctx]);
      else exact.set(name, ctx);
    }
  }
  // Longest suffix first, so *.api.example.com wins over *.example.com. Unknown names get the default (undefined).
  wild.sort((a, b) => b[0].length - a[0].length);
  return (servername, cb) => {
    const name = servername.toLowerCase();
    cb(null, exact.get(name) ?? wild.find(([suffix]) => name.endsWith(suffix) && name.length > suffix.length)?.[1]);
  };
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
function h1Events(server: net.Server, handlers: Handlers, request: Handlers['request']): void {
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', handlers.clientError);
  server.on('connect', handlers.upgrade);
  server.on('checkExpectation', request);
}

function h1Server(handlers: Handlers, limits: ClientLimits): http.Server {
  const server = http.createServer({ ServerResponse: DrainAwareResponse as unknown as typeof http.ServerResponse, requireHostHeader: false });
  Object.assign(server, h1Settings(limits));
  const request = inOrder(handlers.request);
  server.on('request', request);
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    holdContinue(req);
    request(req, res);
  });
  h1Events(server, handlers, request);
  return server;
}

function h2Handlers(server: http2.Http2Server, handlers: Handlers, limits: ClientLimits): void {
  const request = (req: AnyRequest, res: AnyResponse) => handlers.request(req as http.IncomingMessage, res as http.ServerResponse);
  server.on('request', request);
  server.on('checkContinue', (req: AnyRequest, res: AnyResponse) => {
    holdContinue(req as http.IncomingMessage);
    request(req, res);
  });
  // CONNECT (405) and an unsupported Expect (417) are answered, and logged, by the request handler.
  server.on('connect', request);
  server.on('checkExpectation', request);
  // A broken session or stream concerns that connection only.
  server.on('sessionError', () => {});
  server.on('session', (session: http2.ServerHttp2Session) => {
    session.on('error', () => {});
    exposeClient(session);
  });
  closeIdleSessions(server, limits.keepaliveTimeout);
}

/**
 * nghttp2 resets a stream past `maxHeaderListPairs` (ENHANCE_YOUR_CALM); the margin lets admission answer
 * 431 first, as for HTTP/1.1. SETTINGS_MAX_HEADER_LIST_SIZE is left at its default: advertising max_header_size
 * would turn an oversized header list into a stream reset as well, instead of a 431.
 */
function h2Options(limits: ClientLimits): http2.ServerOptions {
  return { maxHeaderListPairs: h2MaxHeaderPairs(limits) };
}

/**
 * Read just enough of a cleartext connection to tell the HTTP/2 preface from an HTTP/1 request line, then
 * put the bytes back. Paused-mode reads ('readable'), not 'data': a stream switched to flowing mode would lose
 * the unshifted bytes to the HTTP/1 parser, which reads from the handle itself.
 */
function sniff(socket: net.Socket, decide: (h2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
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
  socket.on('error', () => {});
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

/** The server whose `listen({fd})` takes the inherited socket. */
export function createServer(listener: ListenerConfig, handlers: Handlers, drainer: Drainer, limits: ClientLimits = DEFAULT_LIMITS, log?: Logger): net.Server {
  const server = createProtocolServer(listener, handlers, drainer, limits);
  budgetConnections(server, log);
  return server;
}

function createProtocolServer(listener: ListenerConfig, handlers: Handlers, drainer: Drainer, limits: ClientLimits): net.Server {
  if (listener.tls) {
    // TLS terminates here and ALPN picks the parser: HTTP/1.1 goes to an http.Server, h2 to an HTTP/2 server
    // through an H2Port, so that a drain can send a real shutdown notice (see h2-port.ts).
    const t = listener.tls;
    const SNICallback = sniCallback(t);
    const server = tls.createServer({
      cert: t.cert,
      key: t.key,
      minVersion: 'TLSv1.2',
      ciphers: CIPHERS,
      honorCipherOrder: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      ...(SNICallback ? { SNICallback } : {}),
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    const h1 = h1Server(handlers, limits);
    const h2 = http2.createServer(h2Options(limits));
    h2Handlers(h2, handlers, limits);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === 'h2') h2.emit('connection', new H2Port(socket));
      else h1.emit('connection', socket);
    });
    server.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => socket.destroy());
    // h1 never listens itself: Node starts its header-timeout sweep on 'listening'.
    server.once('listening', () => h1.emit('listening'));
    drainer.watch(server, 'secureConnection', [h1, h2]);
    return server;
  }
  const h1 = h1Server(handlers, limits);
  if (!listener.h2c) {
    drainer.watch(h1, 'connection');
    return h1;
  }
  const h2 = http2.createServer(h2Options(limits));
  h2Handlers(h2, handlers, limits);
  const front = net.createServer((socket) => {
    sniff(socket, (isH2) => {
      drainer.markH2(socket, isH2);
      if (isH2) h2.emit('connection', new H2Port(socket));
      else h1.emit('connection', socket);
    });
  });
  // h1 never listens itself (the front hands it connections), and Node starts its header-timeout sweep on
  // 'listening': without this, slowloris clients on an h2c port would never get their 408.
  front.once('listening', () => h1.emit('listening'));
  drainer.watch(front, 'connection', [h1, h2]);
  return front;
}
