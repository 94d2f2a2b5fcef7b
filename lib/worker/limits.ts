/**
 * @module Client limits the HTTP servers do not enforce themselves: the header count (Node only truncates
 * `req.headers` past `maxHeadersCount` and never refuses), HTTP/2 header list size (nghttp2 advertises
 * SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it on what it receives), request body size while the
 * body streams (chunked HTTP/1.1, HTTP/2 without content-length), and the idle timeout of HTTP/2 sessions
 * without streams (Node's session timeout fires once and also while streams wait on a slow upstream).
 */
import fs from 'node:fs';
import type http from 'node:http';
import type http2 from 'node:http2';
import { Transform, type TransformCallback } from 'node:stream';
import type { ClientLimits } from '../config/types.js';
import { BODY_TOO_LARGE } from './errors.js';

/**
 * True when a request has more header fields than allowed, or (HTTP/2 only: llhttp checks HTTP/1.1 itself)
 * a larger header list. Pseudo-headers are not counted. Costs one comparison for a normal HTTP/1.1 request.
 */
export function headersExceeded(req: http.IncomingMessage, limits: ClientLimits): boolean {
  const raw = req.rawHeaders;
  if (req.httpVersionMajor !== 2) return raw.length > 2 * limits.maxHeaders;
  let fields = 0;
  let size = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    size += name.length + raw[i + 1]!.length;
    if (name.charCodeAt(0) !== 58 /* : */) fields++;
  }
  return fields > limits.maxHeaders || size > limits.maxHeaderSize;
}

/** HTTP/2 servers refuse a stream (RST_STREAM ENHANCE_YOUR_CALM) past this many pairs; ours answers 431 first. */
export function h2MaxHeaderPairs(limits: ClientLimits): number {
  return limits.maxHeaders + 16;
}

/**
 * Counts the bytes of a request body that is not delimited by Content-Length and fails with
 * `BATON_BODY_TOO_LARGE` once they pass the limit; undici then aborts the upstream request with that error.
 * Also the HTTP/2 body adapter (a destroyed Http2ServerRequest would reset the stream).
 */
export class BodyLimit extends Transform {
  readonly #limit: number;
  #seen = 0;

  /** `limit` 0 = count nothing, just pass through. */
  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#limit > 0 && this.#seen > this.#limit) {
      cb(Object.assign(new Error(`request body larger than ${this.#limit} bytes`), { code: BODY_TOO_LARGE }));
      return;
    }
    cb(null, chunk);
  }
}

const kContinue = Symbol('baton.continue');

/**
 * The server's 'checkContinue' listener marks the request (`Expect: 100-continue`) instead of letting Node send
 * `100 Continue` at once: the exchange sends it only when an upstream connection is ready for the body, so a
 * refused request (413, 404, 502) gets its final answer without the client uploading anything.
 */
export function holdContinue(req: http.IncomingMessage): void {
  (req as { [kContinue]?: boolean })[kContinue] = true;
}

export function awaitsContinue(req: http.IncomingMessage): boolean {
  return (req as { [kContinue]?: boolean })[kContinue] === true;
}

const kIdle = Symbol('baton.h2idle');

interface SessionState {
  active: number;
  idleSince: number;
}

type TrackedSession = http2.ServerHttp2Session & { [kIdle]?: SessionState };
type TrackedStream = http2.ServerHttp2Stream & { [kIdle]?: SessionState };

function onStreamClose(this: TrackedStream): void {
  const st = this[kIdle];
  if (st === undefined) return;
  st.active--;
  st.idleSince = Date.now();
}

/**
 * `keepalive_timeout` for HTTP/2: a session with no open stream for that long gets a graceful GOAWAY
 * (`session.close()`). One sweep per server, no timer per session or stream.
 */
export function closeIdleSessions(server: http2.Http2Server | http2.Http2SecureServer, timeout: number): void {
  const sessions = new Set<TrackedSession>();
  let timer: NodeJS.Timeout | null = null;
  const sweep = () => {
    const now = Date.now();
    for (const s of sessions) {
      const st = s[kIdle]!;
      if (st.active > 0 || now - st.idleSince < timeout) continue;
      sessions.delete(s);
      if (!s.closed && !s.destroyed) s.close();
    }
    if (sessions.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
  server.on('session', (session: TrackedSession) => {
    session[kIdle] = { active: 0, idleSince: Date.now() };
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (timer === null) {
      timer = setInterval(sweep, Math.max(100, Math.min(1000, Math.floor(timeout / 4))));
      timer.unref();
    }
  });
  server.on('stream', (stream: TrackedStream) => {
    const st = (stream.session as TrackedSession | undefined)?.[kIdle];
    if (st === undefined) return;
    st.active++;
    stream[kIdle] = st;
    stream.once('close', onStreamClose);
  });
}

/**
 * A Host header (or absolute-form authority) that names a host: reg-name, IPv4 or an IPv6 literal, an
 * optional port, nothing else. Refused otherwise (RFC 9112 §3.2: 400), so no `/`, `@`, space or `..` can
 * steer routing or reach an upstream's virtual hosting.
 */
export function isValidHost(value: string): boolean {
  const n = value.length;
  if (n === 0) return true; // an empty Host is allowed when the target has no authority
  if (n > 255 + 6) return false;
  let i = 0;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const end = value.indexOf(']');
    if (end < 3) return false;
    for (i = 1; i < end; i++) {
      const c = value.charCodeAt(i);
      const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46;
      if (!ok) return false;
    }
    i = end + 1;
  } else {
    let prevDot = true; // no leading dot, no '..'
    for (; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c === 58 /* : */) break;
      if (c === 46) {
        if (prevDot) return false;
        prevDot = true;
        continue;
      }
      prevDot = false;
      const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 95;
      if (!ok) return false;
    }
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (value.charCodeAt(i) !== 58 || n - i - 1 > 5) return false;
  for (let k = i + 1; k < n; k++) {
    const c = value.charCodeAt(k);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** File descriptors kept back for log files, health checks, DNS, Node itself. */
const FD_RESERVE = 32;

/**
 * How many client connections one server of this worker may hold before new ones are closed at once
 * (`server.maxConnections`): half of the file descriptors left under the soft RLIMIT_NOFILE, since a proxied
 * client may need an upstream connection too, minus a reserve. Without it, a worker at its fd limit keeps
 * accepting (libuv's reserve-fd trick closes the excess, so it does not spin) but then cannot open the upstream
 * connections its accepted clients need: every request would fail. null when the limit is unknown or unlimited.
 */
export function connectionBudget(): number | null {
  let limits: string;
  try {
    limits = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (m === null || m[1] === 'unlimited') return null;
  let open = 0;
  try {
    open = fs.readdirSync('/proc/self/fd').length;
  } catch {
    /* not Linux: count nothing */
  }
  return Math.max(1, Math.floor((Number(m[1]) - open - FD_RESERVE) / 2));
}
