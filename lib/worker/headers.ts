/**
 * @module Header rewriting between client and upstream (pure functions): the upstream request header list
 * built from the client's raw headers through a strip list, with validation and the X-Forwarded-* / Via /
 * X-Request-Id additions; and the client response header list built from the upstream's raw headers.
 *
 * Lists are flat `[name, value, name, value, ...]` arrays: that is what `req.rawHeaders` is, what the pools'
 * `headers` option and `res.writeHead` accept, and it keeps duplicates (set-cookie) without any object work.
 * Names keep the sender's spelling; comparisons are on the lower-cased name.
 */
import http from 'node:http';
import { displayAddress, type TrustedProxies } from './client-address.js';

/** Why a request was refused before anything was sent upstream (→ 400). */
export class BadRequest extends Error {
  override readonly name = 'BadRequest';
}

/**
 * Request headers never forwarded: hop-by-hop ones (RFC 9110 §7.6.1, `te` included), the framing the pools write
 * themselves (`connection`, `transfer-encoding`), and `expect` (answered here: request-body.ts).
 * `host` and the forwarding headers are re-added explicitly; `proxy-authorization` is meant for a proxy, i.e.
 * us, and is not leaked to applications.
 */
const REQUEST_STRIP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'http2-settings', 'expect', 'host', 'proxy-authorization',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via', 'x-request-id',
]);

/** Response headers that describe the upstream connection, not the message (and are illegal in HTTP/2). */
export const RESPONSE_STRIP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
]);

/** For a tunnel (WebSocket) the upgrade itself must survive the strip list. */
const TUNNEL_KEEP: ReadonlySet<string> = new Set(['upgrade']);

const VIA = '1.1 baton';

export interface ForwardContext {
  /** The peer's address (client-address.ts: `peerAddress`). */
  readonly clientAddress: string;
  /** `trusted_proxies`: from such a peer, X-Forwarded-For names the client. */
  readonly trusted?: TrustedProxies | null;
  /** `https` on TLS sockets. */
  readonly proto: 'http' | 'https';
  /** Keep `Upgrade` and send `Connection: upgrade` (WebSocket tunnels). */
  readonly tunnel?: boolean;
  /** The authority of an absolute-form request target, which overrides `Host` (RFC 9112 §3.2.2). */
  readonly authority?: string | undefined;
  /**
   * Forward header names containing `_` (`limits.underscores_in_headers`). Off by default, as in nginx: CGI and
   * WSGI-style backends fold `_` and `-` together, so `X_Forwarded_For` or `Transfer_Encoding` would reach them
   * as the header they imitate.
   */
  readonly underscores?: boolean;
}

export interface UpstreamHead {
  /** Flat upstream header list, validated, ready for the pools (or http.request for tunnels). */
  readonly headers: string[];
  /** `Host` (or `:authority`) as the client sent it; '' if none. */
  readonly authority: string;
  /** The client: the peer, or the address X-Forwarded-For names when the peer is a trusted proxy. */
  readonly client: string;
  readonly requestId: string;
  /** Declared `Content-Length`, or -1. */
  readonly contentLength: number;
  /** The client sent `Transfer-Encoding` (HTTP/1.1 chunked body). */
  readonly chunked: boolean;
  /** The `Expect` value, or null (never forwarded: see admission.ts). */
  readonly expect: string | null;
}

/**
 * Build the upstream request headers from a client's raw header list (`req.rawHeaders`: HTTP/1.1, or
 * HTTP/2 with its `:pseudo` headers). Throws `BadRequest` for anything invalid on the wire or
 * ambiguous (invalid name or value, conflicting `Content-Length`).
 */
export function buildUpstreamHead(raw: readonly string[], ctx: ForwardContext): UpstreamHead {
  const out: string[] = [];
  let authority = '';
  let h2Authority = '';
  let connection: string | null = null;
  let xff: string | null = null;
  let via: string | null = null;
  let requestId: string | null = null;
  let contentLength = -1;
  let chunked = false;
  let cookieAt = -1;
  let hosts = 0;
  let expect: string | null = null;
  const tunnel = ctx.tunnel === true;
  const underscores = ctx.underscores === true;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') h2Authority = value;
      continue;
    }
    if (!underscores && name.indexOf('_') !== -1) continue;
    const lower = name.toLowerCase();
    if (REQUEST_STRIP.has(lower)) {
      switch (lower) {
        case 'host':
          // RFC 9112 §3.2: more than one Host is a 400 (which one would the upstream believe?).
          if (hosts++ > 0) throw new BadRequest('more than one host header');
          authority = value;
          break;
        case 'connection': connection = connection === null ? value : connection + ',' + value; break;
        case 'transfer-encoding':
          // We re-frame bodies ourselves; anything but plain `chunked` (`identity, chunked`, `gzip`...) is
          // an obfuscation attempt or a coding we would have to decode (RFC 9112 §6.1: 400 or 501).
          if (!isChunked(value)) throw new BadRequest('unsupported transfer-encoding');
          chunked = true;
          break;
        case 'x-forwarded-for': xff = xff === null ? value : xff + ', ' + value; break;
        case 'via': via = via === null ? value : via + ', ' + value; break;
        case 'x-request-id': if (requestId === null) requestId = value; break;
        case 'upgrade': if (tunnel) push(out, name, value); break;
        case 'expect': expect = expect === null ? value : expect + ',' + value; break;
        // `te: trailers` says the client accepts trailers: gRPC needs it end to end (RFC 9113 §8.2.2 allows it).
        case 'te': if (value.trim().toLowerCase() === 'trailers') out.push('te', 'trailers'); break;
      }
      continue;
    }
    if (lower === 'content-length') {
      const n = parseContentLength(value);
      if (n === -1 || (contentLength !== -1 && n !== contentLength)) throw new BadRequest('invalid content-length');
      if (contentLength !== -1) continue; // an identical duplicate: send one
      contentLength = n;
    } else if (lower === 'cookie') {
      // HTTP/2 may split cookies into several fields; HTTP/1.1 allows one (RFC 9113 §8.2.3).
      if (cookieAt !== -1) {
        validate(name, value);
        out[cookieAt] += '; ' + value;
        continue;
      }
      cookieAt = out.length + 1;
    }
    push(out, name, value);
  }
  if (h2Authority !== '') authority = h2Authority;
  if (ctx.authority !== undefined) authority = ctx.authority;
  // Both framings at once is the request-smuggling shape; Node's parser refuses it already, be sure anyway.
  if (chunked && contentLength !== -1) throw new BadRequest('both transfer-encoding and content-length');
  if (connection !== null && !isPlainConnection(connection)) stripConnectionTokens(out, connection, tunnel ? TUNNEL_KEEP : null);
  if (authority !== '') push(out, 'host', authority);
  if (tunnel) out.push('connection', 'upgrade');
  const id = requestId !== null && isSaneRequestId(requestId) ? requestId : nextRequestId();
  let client = displayAddress(ctx.clientAddress);
  let forwarded: string;
  const trusted = ctx.trusted;
  if (xff === null) forwarded = client;
  else if (trusted != null && trusted.trusts(client) && trusted.resolve(xff)) {
    // The list as received up to the client: it stays the last entry, which is what an upstream trusting us reads.
    client = trusted.client;
    forwarded = trusted.forwarded;
  } else forwarded = xff + ', ' + client;
  out.push(
    'x-forwarded-for', forwarded,
    'x-forwarded-proto', ctx.proto,
  );
  if (authority !== '') out.push('x-forwarded-host', authority);
  push(out, 'via', via === null ? VIA : via + ', ' + VIA);
  out.push('x-request-id', id);
  return { headers: out, authority, client, requestId: id, contentLength, chunked, expect };
}

function push(out: string[], name: string, value: string): void {
  validate(name, value);
  out.push(name, value);
}

function validate(name: string, value: string): void {
  try {
    http.validateHeaderName(name);
    http.validateHeaderValue(name, value);
  } catch {
    throw new BadRequest(`invalid header ${JSON.stringify(name.slice(0, 64))}`);
  }
}

function parseContentLength(value: string): number {
  if (value.length === 0 || value.length > 15) return -1;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
  }
  return Number(value);
}

/** Exactly `chunked` (any case, optional whitespace around it). */
function isChunked(value: string): boolean {
  return value.length === 7 ? value.toLowerCase() === 'chunked' : value.trim().toLowerCase() === 'chunked';
}

/** `keep-alive` / `close` alone (nearly every message): no token names another header. */
function isPlainConnection(value: string): boolean {
  return value.length <= 10 && /^(?:keep-alive|close)$/i.test(value);
}

/** Remove, in place, every header named by a `Connection` token (RFC 9110 §7.6.1). */
function stripConnectionTokens(out: string[], connection: string, keep: ReadonlySet<string> | null): void {
  const tokens = connection.toLowerCase().split(',');
  const drop = new Set<string>();
  for (const t of tokens) {
    const token = t.trim();
    // keep-alive / close / upgrade name headers already stripped; skip the common case quickly.
    if (token === '' || token === 'keep-alive' || token === 'close' || (keep !== null && keep.has(token))) continue;
    drop.add(token);
  }
  if (drop.size === 0) return;
  let w = 0;
  for (let r = 0; r < out.length; r += 2) {
    if (drop.has(out[r]!.toLowerCase())) continue;
    out[w++] = out[r]!;
    out[w++] = out[r + 1]!;
  }
  out.length = w;
}

/** A client-supplied id is kept when it is short and made of harmless characters (it ends up in logs). */
export function isSaneRequestId(id: string): boolean {
  if (id.length === 0 || id.length > 200) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      c === 45 || c === 46 || c === 95 || c === 58 || c === 64 || c === 47 || c === 43 || c === 61 || c === 126;
    if (!ok) return false;
  }
  return true;
}

// A random per-process prefix and a counter: unique across workers and restarts, and far cheaper than a UUID
// per request (no crypto call on the hot path).
// Drawn at the first request, not at start: node:crypto stays off the worker's start-up path.
let idPrefix: string | null = null;
let idCounter = 0;

export function nextRequestId(): string {
  idPrefix ??= process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex') + '-';
  idCounter = idCounter === Number.MAX_SAFE_INTEGER ? 1 : idCounter + 1;
  return idPrefix + idCounter.toString(36);
}

/**
 * The client response header list from the upstream's raw response headers (strings or latin1 Buffers):
 * hop-by-hop headers and the headers named by `Connection` removed, duplicates kept, and `x-request-id` added
 * when the upstream did not set one. Nothing connection-specific survives, so the list is valid for HTTP/2.
 */
export function buildResponseHeaders(raw: readonly (Buffer | string)[], requestId: string): string[] {
  const out: string[] = [];
  let connection: string | null = null;
  let hasId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    const v = raw[i + 1]!;
    const name = typeof n === 'string' ? n : n.toString('latin1');
    const value = typeof v === 'string' ? v : v.toString('latin1');
    const kind = responseName(name);
    if (kind === Name.Other) out.push(name, value);
    else if (kind === Name.RequestId) {
      hasId = true;
      out.push(name, value);
    } else if (kind === Name.Connection) connection = connection === null ? value : connection + ',' + value;
  }
  if (connection !== null && !isPlainConnection(connection)) stripConnectionTokens(out, connection, null);
  if (!hasId) out.push('x-request-id', requestId);
  return out;
}

const enum Name { Other, Strip, Connection, RequestId }

/** `name` equals `lower` (lower-case ASCII, same length) ignoring ASCII case, without a lower-cased copy. */
function sameName(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = name.charCodeAt(i);
    if ((c >= 65 && c <= 90 ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * What a response header name is to buildResponseHeaders: RESPONSE_STRIP (Connection apart) or X-Request-Id, by
 * length first. Most names of a response (Content-Type, Date, Server...) are then told apart without the
 * lower-cased copy and hash lookup per header that a Set needs: this runs for every header of every response.
 */
function responseName(name: string): Name {
  switch (name.length) {
    case 2: return sameName(name, 'te') ? Name.Strip : Name.Other;
    case 7: return sameName(name, 'trailer') || sameName(name, 'upgrade') ? Name.Strip : Name.Other;
    case 10: return sameName(name, 'connection') ? Name.Connection : sameName(name, 'keep-alive') ? Name.Strip : Name.Other;
    case 12: return sameName(name, 'x-request-id') ? Name.RequestId : Name.Other;
    case 16: return sameName(name, 'proxy-connection') ? Name.Strip : Name.Other;
    case 17: return sameName(name, 'transfer-encoding') ? Name.Strip : Name.Other;
    default: return Name.Other;
  }
}

/** Headers of a tunnel's 101 (or refused handshake) as an object, for http-proxy: hop-by-hop removed except the upgrade. */
export function cleanTunnelResponseHeaders(headers: http.IncomingHttpHeaders, upgraded: boolean): void {
  const connection = headers.connection;
  for (const name of RESPONSE_STRIP) {
    if (upgraded && (name === 'connection' || name === 'upgrade')) continue;
    delete headers[name];
  }
  if (typeof connection === 'string') {
    for (const t of connection.toLowerCase().split(',')) {
      const token = t.trim();
      if (token !== '' && token !== 'upgrade' && token !== 'close' && token !== 'keep-alive') delete headers[token];
    }
  }
  if (upgraded) headers.connection = 'Upgrade';
  else headers.connection = 'close';
}

/** A flat list as an object (multi-valued names become arrays), for APIs that want one. */
export function toHeaderObject(flat: readonly string[]): Record<string, string | string[]> {
  const obj: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i]!.toLowerCase();
    const v = flat[i + 1]!;
    const prev = obj[k];
    if (prev === undefined) obj[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else obj[k] = [prev, v];
  }
  return obj;
}
