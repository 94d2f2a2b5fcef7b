/**
 * @module WebSocket tunnels (`Upgrade: websocket`) through http-proxy's `ws()`: routed like HTTP requests,
 * headers stripped and validated like HTTP requests (but keeping the upgrade), a raw `HTTP/1.1 502` when the
 * upstream cannot be reached, non-101 handshake answers relayed, and every open tunnel tracked so the worker
 * can count and close them. http-proxy crashes the process on an unhandled 'error': there is always a
 * callback, a server-level 'error' listener and an 'error' listener on each socket.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import { BadRequest, buildUpstreamHead, cleanTunnelResponseHeaders, displayAddress, nextRequestId, toHeaderObject } from './headers.js';
import { normalizeHost, routingPath, splitAbsoluteTarget, type RouteEntry } from './router.js';
import { CLIENT_GONE, classify, errorCode } from './errors.js';
import { rawError, rawReturn } from './respond.js';
import { markDown, markUp, type Target, type Upstream } from './upstream/pools.js';
import type { HandlerContext } from './exchange.js';
import { logAccess, ms } from './access-log.js';
import { recorder } from '../metrics/recorder.js';

const kTunnel = Symbol('baton.tunnel');
type ClientSocket = Duplex & { [kTunnel]?: Tunnel };

interface Tunnel {
  readonly client: ClientSocket;
  readonly requestId: string;
  readonly entry: RouteEntry;
  readonly upstream: Upstream;
  readonly target: Target;
  readonly start: number;
  readonly method: string;
  readonly path: string;
  readonly hostname: string;
  readonly clientAddress: string;
  proxyReq: http.ClientRequest | null;
  upstreamSocket: net.Socket | null;
  connected: boolean;
  /** Something was written to the client (101 or a relayed refusal): no error page any more. */
  responded: boolean;
  upgraded: boolean;
  status: number;
  counted: boolean;
  closed: boolean;
}

interface WsTarget {
  protocol: string;
  host: string;
  hostname: string;
  port: number;
}

/** Socket errors are expected (resets); the tunnel's 'close' does the cleanup. The listener must exist. */
function ignoreSocketError(): void {}

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class Tunnels {
  readonly #ctx: HandlerContext;
  readonly #proxy: httpProxy;
  readonly #open = new Set<Tunnel>();
  readonly #targets = new WeakMap<Target, WsTarget>();
  /** Serve a non-WebSocket upgrade request (e.g. `Upgrade: h2c`) as the plain HTTP request it also is. */
  readonly #plain: (req: http.IncomingMessage, res: http.ServerResponse) => void;

  constructor(ctx: HandlerContext, plain: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
    this.#ctx = ctx;
    this.#plain = plain;
    // prependPath false + our own path; no xfwd (we add X-Forwarded-* ourselves); Host kept from the client.
    this.#proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, prependPath: false, changeOrigin: false });
    // Only reached if a callback-less path ever fires: without a listener http-proxy throws (process crash).
    this.#proxy.on('error', (err, _req, socket) => {
      ctx.logs.error.warn({ code: errorCode(err), error: err.message }, 'websocket proxy error');
      const s = socket as unknown as Duplex | undefined;
      if (s && typeof s.destroy === 'function') s.destroy();
    });
    this.#proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.#onProxyRequest(proxyReq, socket as ClientSocket));
  }

  get open(): number {
    return this.#open.size;
  }

  /** Close every tunnel now (the drain deadline). */
  closeAll(): void {
    for (const t of this.#open) {
      t.upstreamSocket?.destroy();
      t.proxyReq?.destroy();
      t.client.destroy();
    }
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreSocketError);
    try {
      this.#upgrade(req, socket as ClientSocket, head);
    } catch (err) {
      this.#ctx.logs.error.error({ err }, 'internal error on an upgrade request');
      this.#answer(socket, rawError(500, nextRequestId()));
    }
  }

  #answer(socket: Duplex, bytes: Buffer): void {
    if (!socket.destroyed && socket.writable) socket.end(bytes);
    else socket.destroy();
  }

  #upgrade(req: http.IncomingMessage, socket: ClientSocket, head: Buffer): void {
    const upgradeTo = req.headers.upgrade;
    if (typeof upgradeTo !== 'string' || upgradeTo.toLowerCase() !== 'websocket') {
      this.#servePlain(req, socket, head);
      return;
    }
    const clientAddress = displayAddress(req.socket?.remoteAddress);
    let path = req.url ?? '';
    let authority: string | undefined;
    if (path.charCodeAt(0) !== 47) {
      const abs = splitAbsoluteTarget(path);
      if (abs === null) return this.#answer(socket, rawError(400, nextRequestId()));
      authority = abs.authority;
      path = abs.path;
    }
    if (req.method !== 'GET') return this.#answer(socket, rawError(405, nextRequestId()));
    let headers: string[];
    let requestId: string;
    let hostname: string;
    try {
      const h = buildUpstreamHead(req.rawHeaders, {
        clientAddress,
        proto: (req.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http',
        tunnel: true,
        authority,
      });
      headers = h.headers;
      requestId = h.requestId;
      hostname = normalizeHost(h.authority);
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      this.#ctx.logs.error.info({ client: clientAddress, path: req.url, reason: err.message }, 'bad upgrade request');
      return this.#answer(socket, rawError(400, nextRequestId()));
    }
    const rpath = routingPath(path);
    if (rpath === null) return this.#answer(socket, rawError(400, requestId));
    const entry = this.#ctx.router.match(hostname, rpath);
    if (entry === null) return this.#answer(socket, rawError(404, requestId));
    const action = this.#ctx.actions[entry.index]!;
    if (action.ret !== null) return this.#answer(socket, rawReturn(action.ret, requestId));
    if (action.upstream === null) return this.#answer(socket, rawError(502, requestId));

    const upstream = action.upstream;
    const picked = upstream.balancer.pick(Date.now());
    if (picked === -1) return this.#answer(socket, rawError(502, requestId)); // every target is down
    const target = upstream.targets[picked]!;
    const tunnel: Tunnel = {
      client: socket, requestId, entry, upstream, target, start: performance.now(), method: req.method, path: req.url ?? '',
      hostname, clientAddress, proxyReq: null, upstreamSocket: null, connected: false, responded: false, upgraded: false,
      status: 0, counted: true, closed: false,
    };
    target.inflight++; // least_conn sees long-lived tunnels too
    socket[kTunnel] = tunnel;
    this.#open.add(tunnel);
    socket.once('close', () => this.#closed(tunnel));
    // http-proxy copies req.headers into its upstream request: hand it the cleaned, validated set.
    req.headers = toHeaderObject(headers) as http.IncomingHttpHeaders;
    this.#proxy.ws(req, socket, head, { target: this.#wsTarget(target) as unknown as string }, (err) => this.#failed(tunnel, err));
  }

  #wsTarget(target: Target): WsTarget {
    let t = this.#targets.get(target);
    if (t === undefined) {
      const url = new URL(target.origin);
      const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
      t = { protocol: url.protocol, host: hostname, hostname, port };
      this.#targets.set(target, t);
    }
    return t;
  }

  /** http-proxy created the upstream request; listeners added here run before its own. */
  #onProxyRequest(proxyReq: http.ClientRequest, socket: ClientSocket): void {
    const tunnel = socket[kTunnel];
    if (tunnel === undefined) return;
    tunnel.proxyReq = proxyReq;
    const up = tunnel.upstream.config;
    if (tunnel.closed) {
      proxyReq.destroy();
      return;
    }
    // Connect timeout, then the response timeout until the handshake answer; none once upgraded.
    if (up.connectTimeout > 0) proxyReq.setTimeout(up.connectTimeout);
    proxyReq.on('socket', (s: net.Socket) => {
      s.once('connect', () => {
        tunnel.connected = true;
        proxyReq.setTimeout(up.responseTimeout);
      });
    });
    proxyReq.on('timeout', () => {
      proxyReq.destroy(tunnel.connected
        ? coded('UND_ERR_HEADERS_TIMEOUT', 'no handshake answer within response_timeout')
        : coded('UND_ERR_CONNECT_TIMEOUT', 'connect timeout'));
    });
    proxyReq.on('response', (res: http.IncomingMessage) => {
      // A refused handshake (401, 403, 404...) is relayed; http-proxy pipes the decoded body and then closes.
      tunnel.responded = true;
      tunnel.status = res.statusCode ?? 0;
      cleanTunnelResponseHeaders(res.headers, false);
      if (res.headers['x-request-id'] === undefined) res.headers['x-request-id'] = tunnel.requestId;
    });
    proxyReq.on('upgrade', (res: http.IncomingMessage, upstreamSocket: net.Socket) => {
      tunnel.responded = true;
      tunnel.upgraded = true;
      tunnel.status = 101;
      tunnel.upstreamSocket = upstreamSocket;
      upstreamSocket.on('error', ignoreSocketError);
      if (tunnel.target.fails !== 0 || tunnel.target.downUntil !== 0) markUp(tunnel.target);
      cleanTunnelResponseHeaders(res.headers, true);
      if (res.headers['x-request-id'] === undefined) res.headers['x-request-id'] = tunnel.requestId;
      if (tunnel.closed) {
        upstreamSocket.destroy();
        return;
      }
      // The upstream left: let what it sent reach the client, then close.
      upstreamSocket.once('close', () => {
        const c = tunnel.client as Duplex & { destroySoon?: () => void };
        if (c.destroyed) return;
        if (typeof c.destroySoon === 'function') c.destroySoon();
        else c.end();
      });
    });
  }

  /** http-proxy's callback: the upstream request or the upstream socket failed. It ends the client socket after us. */
  #failed(tunnel: Tunnel, err: Error): void {
    try {
      let code = errorCode(err);
      if (tunnel.closed || tunnel.client.destroyed) code = CLIENT_GONE;
      const failure = classify(code);
      if (failure.kind !== 'client') recorder.upstreamFailure(tunnel.entry.index, failure.kind, failure.code);
      const fields = { code: failure.code === 'UNKNOWN' ? errorCode(err) : failure.code, error: err.message, upstream: tunnel.target.address, route: tunnel.entry.label, request_id: tunnel.requestId, path: tunnel.path };
      if (failure.kind === 'client') {
        this.#ctx.logs.error.info(fields, 'websocket client left');
        tunnel.client.destroy();
        return;
      }
      if (!tunnel.responded) {
        if (failure.markDown) markDown(tunnel.target, Date.now());
        this.#ctx.logs.error[failure.level](fields, 'websocket upstream failed');
        tunnel.responded = true;
        tunnel.status = failure.status;
        const c = tunnel.client;
        if (c.writable) c.end(rawError(failure.status, tunnel.requestId));
        else c.destroy();
        return;
      }
      this.#ctx.logs.error.info(fields, tunnel.upgraded ? 'websocket tunnel closed by an upstream error' : 'websocket handshake relay failed');
      tunnel.client.destroy();
    } catch (bug) {
      this.#ctx.logs.error.error({ err: bug }, 'internal error in a websocket failure');
      tunnel.client.destroy();
    }
  }

  #closed(tunnel: Tunnel): void {
    if (tunnel.closed) return;
    tunnel.closed = true;
    this.#open.delete(tunnel);
    if (tunnel.counted) {
      tunnel.counted = false;
      tunnel.target.inflight--;
    }
    if (!tunnel.upgraded) tunnel.proxyReq?.destroy();
    tunnel.upstreamSocket?.destroy();
    recorder.tunnel(tunnel.entry.index, tunnel.status === 0 ? 499 : tunnel.status);
    const access = this.#ctx.logs.access;
    if (access === null) return;
    logAccess(access, {
      client: tunnel.clientAddress,
      method: tunnel.method,
      host: tunnel.hostname,
      path: tunnel.path,
      status: tunnel.status === 0 ? 499 : tunnel.status,
      // The socket belongs to this tunnel alone, so its counter is exact (handshake answer included).
      bytes: (tunnel.client as Partial<net.Socket>).bytesWritten ?? 0,
      duration: ms(tunnel.start, performance.now()),
      upstream: tunnel.target.origin,
      upstream_time: null,
      request_id: tunnel.requestId,
      protocol: 'HTTP/1.1',
    });
  }

  /**
   * An `Upgrade` we do not tunnel (h2c, TLS...): RFC 9110 §7.8 lets a server ignore it, so answer the request
   * as plain HTTP/1.1 on the socket Node handed over, then close the connection.
   */
  #servePlain(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (head.length > 0 || !req.complete) {
      // Bytes beyond the request (or a body) would need the HTTP parser Node already detached.
      this.#answer(socket, rawError(400, nextRequestId()));
      return;
    }
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as net.Socket);
    // The socket stays assigned, so its 'close' still closes the response (and logs it) as Node's server would.
    res.once('finish', () => {
      const s = socket as Duplex & { destroySoon?: () => void };
      if (typeof s.destroySoon === 'function') s.destroySoon();
      else s.end();
    });
    this.#plain(req, res);
  }
}
