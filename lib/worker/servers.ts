/**
 * @module One server per listener, on the listening fd inherited from the master: HTTP/1.1; HTTP/1.1 and
 * HTTP/2 with prior knowledge on one cleartext port (h2c: the connection preface decides); or TLS with SNI and
 * ALPN offering h2 and http/1.1. Servers only accept and parse; the request handler decides everything else.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { ListenerConfig, TlsConfig } from '../config/types.js';
import { DrainAwareResponse, type Drainer } from './drain.js';

/** Client keep-alive idle timeout (Node closes at this + 1 s and advertises it in Keep-Alive). */
const KEEPALIVE_TIMEOUT_MS = 5000;
const HEADERS_TIMEOUT_MS = 60_000;
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
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void;
  clientError(err: Error & { code?: string }, socket: net.Socket): void;
}

const H1_OPTIONS: http.ServerOptions = {
  ServerResponse: DrainAwareResponse as unknown as typeof http.ServerResponse,
  keepAliveTimeout: KEEPALIVE_TIMEOUT_MS,
  headersTimeout: HEADERS_TIMEOUT_MS,
  // Large uploads may take long; inactivity is bounded by the upstream idle timeout instead.
  requestTimeout: 0,
};

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

function h1Server(handlers: Handlers): http.Server {
  const server = http.createServer(H1_OPTIONS);
  server.on('request', handlers.request);
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', handlers.clientError);
  return server;
}

function h2Handlers(server: http2.Http2Server | http2.Http2SecureServer, handlers: Handlers): void {
  server.on('request', (req: AnyRequest, res: AnyResponse) => handlers.request(req as http.IncomingMessage, res as http.ServerResponse));
  // A broken session or stream concerns that connection only.
  server.on('sessionError', () => {});
  server.on('session', (session: http2.ServerHttp2Session) => session.on('error', () => {}));
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

/** The server whose `listen({fd})` takes the inherited socket. */
export function createServer(listener: ListenerConfig, handlers: Handlers, drainer: Drainer): net.Server {
  if (listener.tls) {
    const t = listener.tls;
    const SNICallback = sniCallback(t);
    const server = http2.createSecureServer({
      allowHTTP1: true,
      cert: t.cert,
      key: t.key,
      minVersion: 'TLSv1.2',
      ciphers: CIPHERS,
      honorCipherOrder: true,
      ...(SNICallback ? { SNICallback } : {}),
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      Http1ServerResponse: DrainAwareResponse as unknown as typeof http.ServerResponse,
    });
    // allowHTTP1 servers have no keep-alive timeout of their own: HTTP/1.1 connections would never time out.
    Object.assign(server, { keepAliveTimeout: KEEPALIVE_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: 0 });
    h2Handlers(server, handlers);
    server.on('upgrade', handlers.upgrade);
    server.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => socket.destroy());
    drainer.watch(server, 'secureConnection');
    return server;
  }
  const h1 = h1Server(handlers);
  if (!listener.h2c) {
    drainer.watch(h1, 'connection');
    return h1;
  }
  const h2 = http2.createServer();
  h2Handlers(h2, handlers);
  const front = net.createServer((socket) => {
    sniff(socket, (isH2) => {
      drainer.markH2(socket, isH2);
      (isH2 ? h2 : h1).emit('connection', socket);
    });
  });
  drainer.watch(front, 'connection', [h1, h2]);
  return front;
}
