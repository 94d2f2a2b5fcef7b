/**
 * @module A socket taken over from the HTTP/1 parser by an Upgrade or CONNECT request: answering on it and
 * closing it without leaking it. Once Node hands such a socket over nobody reads it, so bytes the client sent
 * after its header block (a body, a pipelined request, early WebSocket frames) stay buffered and its FIN is
 * never seen: the socket would never close. After our answer the input is read and dropped, and the socket is
 * destroyed when the client has closed its side, or after a short grace period at most (a lingering close, as
 * nginx does, so that the client reads our answer before any reset).
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';

/** How long a client gets to read our answer and close its side. */
const LINGER_MS = 2000;

/** Read and drop what the client still sends; destroy the socket once it has closed, or at the grace deadline. */
export function lingerClose(socket: Duplex): void {
  if (socket.destroyed) return;
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Write `bytes` (a complete response) and close the socket as above. */
export function answerAndClose(socket: Duplex, bytes: Buffer): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(bytes);
  lingerClose(socket);
}

/**
 * An Upgrade we do not tunnel (h2c, TLS...) or a CONNECT: RFC 9110 §7.8 lets a server ignore an upgrade, so the
 * request is answered as the plain HTTP/1.1 request it also is, by `serve`, on a response over the socket Node
 * handed over; the connection closes after it. Bytes after the header block are not read as a next request.
 */
export function servePlain(req: http.IncomingMessage, socket: Duplex, serve: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as net.Socket);
  // The socket stays assigned, so its 'close' still closes the response (and logs it) as Node's server would.
  res.once('finish', () => {
    socket.end();
    lingerClose(socket);
  });
  serve(req, res);
}
