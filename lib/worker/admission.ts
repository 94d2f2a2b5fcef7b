/**
 * @module Admission: the one gate every request passes before anything is answered or sent upstream, HTTP/1.x,
 * HTTP/2 and Upgrade (WebSocket) requests alike (Pingora's request filter). In order: CONNECT, request target,
 * version, method, header limits, headers (the upstream list is built and validated here), Host, Expect, body framing,
 * path, then the route, its access rules and body limit, and its path and header rules. The outcome is an
 * `Admission`: refused (a status and a reason), or admitted with its route (none = 404) and everything the later
 * phases need (the client address, the upstream header list, the forwarded target, the body's framing and limit).
 */
import type http from 'node:http';
import type { ClientLimits } from '../config/types.js';
import type { VariableSource } from '../util/template.js';
import { TOKEN } from '../util/http-token.js';
import type { TrustedProxies } from './client-address.js';
import { applyHeaderRules } from './header-rules.js';
import { BadRequest, buildUpstreamHead, type UpstreamHead } from './headers.js';
import { rewriteTarget } from './path-rules.js';
import type { RouteAction } from './route-action.js';
import { normalizeHost, routingPath, splitAbsoluteTarget, type RouteEntry, type Router } from './router.js';

/** What admission reads, compiled once per config. */
export interface Gate {
  readonly router: Router;
  readonly actions: readonly RouteAction[];
  readonly limits: ClientLimits;
  /** `trusted_proxies`, or null when there are none. */
  readonly trusted: TrustedProxies | null;
}

/** How the request reached us. */
export const enum Arrival {
  /** A request the HTTP server parsed (HTTP/1.x or HTTP/2): its body can be streamed. */
  Parsed,
  /** An Upgrade or CONNECT request on a socket taken over from the HTTP/1 parser: no body can be read. */
  Detached,
  /** A WebSocket handshake to tunnel: detached, GET only, `Upgrade` kept. */
  Tunnel,
}

/** Characters no request-target may carry (controls, space, non-latin1): refused before anything goes upstream. */
const INVALID_PATH = /[^\u0021-\u00ff]/;
/** Node's own test for a 100-continue expectation (checkContinue). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;
const EMPTY: string[] = [];

/**
 * What admission found out about a request: filled by `admit` only. An Exchange is an Admission (one object per
 * request); a tunnel has one of its own.
 */
export class Admission implements VariableSource {
  /** 0 when admitted; else the status the refusal answers (400, 403, 405, 413, 417, 431, 505). */
  refusal = 0;
  reason = '';
  requestId = '';
  /** The client address: the peer, or the one X-Forwarded-For names when the peer is a trusted proxy. */
  client = '';
  scheme: 'http' | 'https' = 'http';
  /** Routing host: lower-case, no port. */
  hostname = '';
  /** The request target as received, in origin form (an absolute-form target loses its authority). */
  uri = '';
  /** The request target as forwarded: `uri`, unless the route's path rules rewrite it. */
  target = '';
  /** The upstream header list, validated. */
  headers: string[] = EMPTY;
  /** null: no route matches (404). */
  entry: RouteEntry | null = null;
  action: RouteAction | null = null;
  hasBody = false;
  /** Bytes a body without Content-Length may carry, counted as it streams (0 = not counted). */
  bodyLimit = 0;

  refuse(status: number, reason: string): this {
    this.refusal = status;
    this.reason = reason;
    return this;
  }
}

/**
 * The forwarding context of the request being admitted. One per process, refilled for each request: the header
 * builder keeps nothing of it, and this is the hot path (an object per request for five fields is not free).
 */
const forward = {
  clientAddress: '', proto: 'http' as 'http' | 'https', tunnel: false, authority: undefined as string | undefined, underscores: false,
  trusted: null as TrustedProxies | null,
};

/**
 * Admit one request into `a` (`peer`: the address it came from, client-address.ts) and return it; never throws for
 * anything a client can send.
 */
export function admit<A extends Admission>(gate: Gate, req: http.IncomingMessage, arrival: Arrival, peer: string, a: A): A {
  a.client = peer;
  // Methods are case-sensitive (RFC 9110 §9.1): `connect` is not CONNECT, and is forwarded as sent.
  const method = req.method ?? '';
  if (method === 'CONNECT') return a.refuse(405, 'CONNECT is not served');
  let target = req.url ?? '';
  let authority: string | undefined;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const abs = splitAbsoluteTarget(target);
    if (abs === null) return a.refuse(400, 'unsupported request target');
    authority = abs.authority;
    target = abs.path;
  }
  // The HTTP/1 parser also accepts `HTTP/0.9`-style lines and `HTTP/2.0` in a request line; real HTTP/2
  // requests come from the http2 compat layer (they have a stream).
  const h2 = req.httpVersionMajor === 2 && (req as { stream?: unknown }).stream !== undefined;
  if (req.httpVersionMajor !== 1 && !h2) return a.refuse(505, 'unsupported HTTP version');
  // A token is the only shape a method may have (HTTP/2 sends it as a plain header value).
  if (h2 && !TOKEN.test(method)) return a.refuse(400, 'invalid method');
  if (arrival === Arrival.Tunnel && method !== 'GET') return a.refuse(405, 'a WebSocket handshake is a GET');
  if (headersExceeded(req, gate.limits)) return a.refuse(431, 'too many or too large request headers');
  let head: UpstreamHead;
  try {
    forward.clientAddress = peer;
    forward.proto = (req.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http';
    forward.tunnel = arrival === Arrival.Tunnel;
    forward.authority = authority;
    forward.underscores = gate.limits.underscoresInHeaders;
    forward.trusted = gate.trusted;
    head = buildUpstreamHead(req.rawHeaders, forward);
  } catch (err) {
    if (err instanceof BadRequest) return a.refuse(400, err.message);
    throw err;
  }
  a.requestId = head.requestId;
  a.client = head.client;
  a.scheme = forward.proto;
  if (!isValidHost(head.authority)) return a.refuse(400, 'invalid host');
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (Node's own check is off, so that it is logged).
  if (head.authority === '' && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return a.refuse(400, 'missing host');
  a.hostname = normalizeHost(head.authority);
  // Node hands `100-continue` to checkContinue; anything else reaches us only to be refused (RFC 9110 §10.1.1).
  if (head.expect !== null && !CONTINUE.test(head.expect)) return a.refuse(417, 'unsupported expectation');
  // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
  if (head.chunked && req.httpVersionMinor === 0 && req.httpVersionMajor === 1) return a.refuse(400, 'transfer-encoding in an HTTP/1.0 request');
  a.hasBody = head.contentLength > 0 || head.chunked ||
    (head.contentLength === -1 && h2 && (req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false);
  // On a detached socket the body would be unframed bytes after the header block: what the upstream would make
  // of them (a body, the first tunnel bytes, a pipelined request) is exactly what a smuggler hopes for.
  if (a.hasBody && arrival !== Arrival.Parsed) return a.refuse(400, 'a body on an upgrade request');
  const rpath = routingPath(target);
  if (rpath === null || INVALID_PATH.test(target)) return a.refuse(400, 'invalid request path');
  a.uri = target;
  a.target = target;
  a.headers = head.headers;
  const entry = gate.router.match(a.hostname, rpath, a.scheme);
  if (entry === null) return a;
  const action = gate.actions[entry.index]!;
  a.entry = entry;
  a.action = action;
  if (action.access !== null && !action.access.allows(a.client)) return a.refuse(403, 'client address denied by the route\'s allow/deny rules');
  if (action.maxBodySize > 0 && a.hasBody) {
    if (head.contentLength > action.maxBodySize) return a.refuse(413, `request body of ${head.contentLength} bytes, over max_body_size`);
    // Chunked (or HTTP/2 without content-length): counted while it streams (request-body.ts).
    if (head.contentLength === -1) a.bodyLimit = action.maxBodySize;
  }
  if (action.paths !== null) a.target = rewriteTarget(action.paths, target, rpath);
  if (action.request !== null) applyHeaderRules(a.headers, action.request, a);
  return a;
}

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
