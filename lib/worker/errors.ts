/**
 * @module The one table from a proxy failure's error code to what it means: the status the client gets, whether
 * another target may be tried, whether the target is marked down, and the log level. Match on `err.code`, never
 * on `instanceof` (undici's docs: error classes differ across copies of the library).
 */

export type FailureKind =
  /** Nothing reached the upstream (no connection): the next target may be tried for any method. */
  | 'connect'
  /** The connection broke before a response byte: retry once only if idempotent and without a body. */
  | 'reset'
  /** The upstream was too slow. */
  | 'timeout'
  /** The upstream answered something we cannot relay. */
  | 'protocol'
  /** The client left or misbehaved: nothing (or a 4xx) is written. */
  | 'client'
  /** A bug on our side (e.g. a pool refused arguments we built). */
  | 'internal';

export interface Failure {
  readonly code: string;
  /** What the client gets when no response byte was written yet; 499 = the client is gone, write nothing. */
  readonly status: number;
  readonly kind: FailureKind;
  /** Passive health: skip this target for a while (connection-level failures only). */
  readonly markDown: boolean;
  readonly level: 'warn' | 'error';
}

/** Codes of our own, for failures that undici does not name. */
export const CLIENT_GONE = 'BATON_CLIENT_GONE';
/** The client stopped sending its body or reading the response (`body_timeout`, `idle_timeout`). */
export const CLIENT_IDLE = 'BATON_CLIENT_IDLE';
/** The HTTP/1.1 parser refused the rest of the request body (bad chunk framing). */
export const CLIENT_BAD_BODY = 'BATON_CLIENT_BAD_BODY';
/** The request body passed the route's `max_body_size` while it streamed. */
export const BODY_TOO_LARGE = 'BATON_BODY_TOO_LARGE';
/** The upstream's response head could not be relayed (Node refused a header). */
export const BAD_RESPONSE = 'BATON_BAD_RESPONSE';
/** A bug of ours while serving a request. */
export const INTERNAL = 'BATON_INTERNAL';
/** The upstream answered a status the retry policy retries (502, 503, 504): the attempt was given up for another. */
export const RETRY_STATUS = 'BATON_RETRY_STATUS';
/** A gRPC call's deadline (`grpc-timeout`) passed: DEADLINE_EXCEEDED, not the upstream's fault. */
export const DEADLINE = 'BATON_DEADLINE';
/** HTTP/2 upstreams (upstream/h2-pool.ts, upstream/connect.ts). */
export const H2_REFUSED = 'BATON_H2_REFUSED_STREAM';
export const H2_RESET = 'BATON_H2_STREAM_RESET';
export const NO_H2 = 'BATON_NO_H2';

/**
 * OpenSSL's certificate verification results, as Node reports them on a TLS socket: the target's certificate
 * was not accepted, so nothing was sent (502, and it counts for passive health).
 */
const TLS_VERIFY = [
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TLS_CERT_ALTNAME_FORMAT',
];

/** An Error with one of the codes above (or undici's), as the table below classifies it. */
export function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const TABLE = new Map<string, Failure>();

function add(codes: string[], status: number, kind: FailureKind, markDown: boolean, level: 'warn' | 'error' = 'error'): void {
  for (const code of codes) TABLE.set(code, Object.freeze({ code, status, kind, markDown, level }));
}

// No connection was made: safe to try another target whatever the method.
add(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL'], 502, 'connect', true);
add(['UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'], 504, 'connect', true);
// TLS: the target's certificate failed verification, or the handshake failed (an alert, no HTTP/2 in ALPN).
add([...TLS_VERIFY, NO_H2], 502, 'connect', true);
// HTTP/2: the stream was refused before processing (REFUSED_STREAM, or past a GOAWAY): another target may take it.
add([H2_REFUSED], 502, 'connect', false);
// This worker is out of file descriptors: not the target's fault (no mark), and the next target may do better.
add(['EMFILE', 'ENFILE'], 503, 'connect', false);
// Our own pool was closed or destroyed under the request (reload): nothing was sent, the target is fine.
add(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED'], 502, 'connect', false);
// An established connection broke (e.g. the keep-alive race: the upstream closed an idle connection we reused).
add(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED', H2_RESET], 502, 'reset', false);
add(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'], 504, 'timeout', false);
add(['UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE', 'UND_ERR_INFO', BAD_RESPONSE, RETRY_STATUS], 502, 'protocol', false, 'warn');
// The client went away (or stopped sending): logged as 499 / 408 / 400, at warn level since it is not our fault.
add([CLIENT_GONE, 'UND_ERR_ABORTED', 'UND_ERR_ABORT', 'AbortError', 'ERR_STREAM_PREMATURE_CLOSE'], 499, 'client', false, 'warn');
add([CLIENT_IDLE], 408, 'client', false, 'warn');
add(['UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', CLIENT_BAD_BODY], 400, 'client', false, 'warn');
add([BODY_TOO_LARGE], 413, 'client', false, 'warn');
add([DEADLINE], 504, 'client', false, 'warn');
// A pool refused what we built (undici's codes, kept by our pools): a sanitizing bug.
add(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_INVALID_RETURN_VALUE', INTERNAL], 500, 'internal', false);

const UNKNOWN: Failure = Object.freeze({ code: 'UNKNOWN', status: 502, kind: 'protocol', markDown: false, level: 'error' });
const PARSER: Failure = Object.freeze({ code: 'HPE', status: 502, kind: 'protocol', markDown: false, level: 'error' });
/** A TLS handshake that failed with an alert (`ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`, `..._UNKNOWN_CA`...). */
const TLS_HANDSHAKE: Failure = Object.freeze({ code: 'ERR_SSL', status: 502, kind: 'connect', markDown: true, level: 'error' });

export function errorCode(err: unknown): string {
  if (err !== null && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (err as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name;
  }
  return 'UNKNOWN';
}

export function classify(code: string): Failure {
  const hit = TABLE.get(code);
  if (hit !== undefined) return hit;
  // llhttp parse errors of the upstream's response (HPE_INVALID_CHUNK_SIZE, ...).
  if (code.startsWith('HPE_')) return PARSER;
  if (code.startsWith('ERR_SSL_')) return TLS_HANDSHAKE;
  return UNKNOWN;
}

/** Every code the table knows, for tests and docs. */
export function knownCodes(): string[] {
  return [...TABLE.keys()];
}
