/**
 * @module gRPC at the edge of the request path: recognising a call (`content-type: application/grpc...`), its
 * deadline (`grpc-timeout`), and the answers baton gives itself. A gRPC client reads its status from trailers, so
 * a failure is a trailers-only response (HTTP 200, `grpc-status`, `grpc-message`) rather than an HTML 502, with
 * the status a gRPC client acts on: 14 UNAVAILABLE for an upstream that cannot be reached, 4 DEADLINE_EXCEEDED
 * for a timeout. A call over HTTP/1.1 cannot work (no trailers in practice): it is refused with 426.
 */
import type http from 'node:http';
import type http2 from 'node:http2';

/** One table: the status baton would answer → the gRPC status code and message it becomes. */
const STATUS: ReadonlyMap<number, readonly [number, string]> = new Map([
  [400, [13, 'malformed request']],
  [404, [12, 'no route for this method']],
  [405, [12, 'method not allowed']],
  [408, [4, 'the client stopped sending its request']],
  [413, [8, 'request larger than max_body_size']],
  [429, [8, 'too many requests']],
  [431, [8, 'request headers too large']],
  [500, [13, 'internal error in the proxy']],
  [502, [14, 'upstream unavailable']],
  [503, [14, 'upstream overloaded: no connection free in time']],
  [504, [4, 'upstream timeout']],
]);

/** gRPC's UNKNOWN, for any status the table does not name. */
const UNKNOWN: readonly [number, string] = [2, 'proxy error'];

export const GRPC_DEADLINE_EXCEEDED = 4;

/** `content-type: application/grpc` (or `application/grpc+proto`...), read from the raw list: no header object is built. */
export function isGrpc(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 12 || name.toLowerCase() !== 'content-type') continue;
    const v = rawHeaders[i + 1]!;
    return v.length >= 16 && v.slice(0, 16).toLowerCase() === 'application/grpc' && (v.length === 16 || v[16] === '+' || v[16] === ';');
  }
  return false;
}

const UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The call's deadline from `grpc-timeout` (1 to 8 digits and a unit), in ms; -1 when absent or malformed. */
export function grpcTimeout(rawHeaders: readonly string[]): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'grpc-timeout') continue;
    const m = /^(\d{1,8})([HMSmun])$/.exec(rawHeaders[i + 1]!);
    if (m === null) return -1;
    return Math.max(1, Math.ceil(Number(m[1]) * UNITS[m[2]!]!));
  }
  return -1;
}

export function grpcStatusOf(httpStatus: number): readonly [number, string] {
  return STATUS.get(httpStatus) ?? UNKNOWN;
}

/**
 * A trailers-only response for `httpStatus`, written on the HTTP/2 stream itself (one HEADERS frame with
 * END_STREAM: the compatibility layer would add an empty DATA frame, after which a gRPC client sees no status).
 */
export function sendGrpcError(res: http.ServerResponse, httpStatus: number, requestId: string): void {
  const [code, message] = grpcStatusOf(httpStatus);
  const headers = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
    'grpc-message': encodeURIComponent(message),
    'x-request-id': requestId,
  };
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream !== undefined && !stream.headersSent && !stream.destroyed) {
    stream.respond(headers, { endStream: true });
    return;
  }
  res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message), 'x-request-id': requestId });
  res.end();
}

/** End a call whose response has started with a status in the trailers (instead of a reset the client reads as INTERNAL). */
export function endGrpcCall(res: http.ServerResponse, code: number, message: string): void {
  res.addTrailers({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) });
  res.end();
}
