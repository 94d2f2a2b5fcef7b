/**
 * @module What a client gets when the HTTP/1.1 parser refuses its bytes (the server's 'clientError'): header
 * block too large → 431, headers not received within `header_timeout` → 408, anything else → 400; always
 * followed by a close, and logged and counted like every other answer.
 *
 * The parser's error always concerns the last request it parsed on that connection (its body: a bad chunk
 * size, a truncated chunk) or the bytes after it. A request whose body broke is failed (400, or its response
 * cut) so the upstream never gets the rest; requests parsed before are answered, and the connection closes
 * after the last one: never a second, unsolicited response.
 */
import type http from 'node:http';
import type net from 'node:net';
import { requestBodyFailed } from './exchange.js';
import { nextRequestId } from './headers.js';
import { peerAddress } from './client-address.js';
import type { RequestLog } from './request-log.js';
import { currentResponse } from '../util/internals.js';

const TEXT: Readonly<Record<number, string>> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
const kLast = Symbol('baton.lastResponse');
type Tracked = net.Socket & { [kLast]?: http.ServerResponse };

/**
 * servers.ts: a pipelined request waits behind the response holding the connection. The latest one waiting is
 * the last request parsed; without any waiting, the one holding the connection (`_httpMessage`) is.
 */
export function queued(socket: net.Socket | null, res: http.ServerResponse): void {
  if (socket !== null) (socket as Tracked)[kLast] = res;
}

export function dequeued(socket: net.Socket | null, res: http.ServerResponse): void {
  if (socket !== null && (socket as Tracked)[kLast] === res) (socket as Tracked)[kLast] = undefined;
}

function clientErrorStatus(code: string | undefined): number {
  return code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
}

export function answerClientError(log: RequestLog, err: Error & { code?: string }, socket: net.Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const last = (socket as Tracked)[kLast] ?? currentResponse(socket) ?? undefined;
  if (last !== undefined) {
    if (!last.req.complete && requestBodyFailed(last, err.code ?? 'HPE_ERROR')) return;
    // A response still to be written, or being written ('finish' not run yet: Node keeps _httpMessage until
    // then): let it and those queued before it go out, and close after it.
    if (!last.headersSent || currentResponse(socket) !== null) {
      if (!last.headersSent) last.shouldKeepAlive = false;
      else if (last.shouldKeepAlive) last.once('finish', () => socket.end());
      return;
    }
  }
  const status = clientErrorStatus(err.code);
  const text = TEXT[status]!;
  const requestId = nextRequestId();
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length + 1}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${text}\n`);
  const client = peerAddress(socket);
  log.error.debug({ client, code: err.code, status, request_id: requestId }, 'request refused by the HTTP parser');
  log.count(-1, status, 0, -1);
  // Nothing of the request is known for sure: the parser stopped before handing it over.
  log.access({
    client, method: '', host: '', path: '', status, bytes: text.length + 1, duration: 0,
    upstream: null, target: null, upstream_time: null, request_id: requestId, protocol: 'HTTP/1.1',
  });
}
