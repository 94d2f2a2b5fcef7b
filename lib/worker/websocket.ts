/**
 * @module WebSocket tunnels (`Upgrade: websocket`) through http-proxy's `ws()`: admitted like every request
 * (admission.ts: the same Host, path, limits and framing checks, plus GET only and no body), a raw `HTTP/1.1 502`
 * when the upstream cannot be reached, non-101 handshake answers relayed, every answer logged and counted, and
 * every open tunnel tracked so the worker can count and close them, or move them to another worker when it drains
 * (tunnel-move.ts), which then pipes them on and counts and logs them as its own. Other upgrades and CONNECT are
 * answered as plain requests (upgrade-socket.ts). http-proxy crashes the process on an unhandled 'error': there is
 * always a callback, a server-level 'error' listener and an 'error' listener on each socket.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import type httpProxy from 'http-proxy';
import { Admission, admit, Arrival } from './admission.js';
import { logNoLiveTarget } from './failover.js';
import { CLIENT_GONE, classify, coded, errorCode } from './errors.js';
import { serve, type HandlerContext } from './exchange.js';
import { cleanTunnelResponseHeaders, nextRequestId, toHeaderObject } from './headers.js';
import { peerAddress } from './client-address.js';
import { ms } from './access-log.js';
import { rawError, rawReturn } from './respond.js';
import { answerAndClose, lingerClose, servePlain } from './upgrade-socket.js';
import { markDown, markUp, type Target, type Upstream } from './upstream/pools.js';
import { ignoreSocketError, TunnelBook, type Tunnel } from './tunnel-book.js';
import { tunnelTarget, type TunnelTarget } from './upstream/connect.js';
import { hashKeyOf } from './upstream/hash-key.js';
import { anyUp } from './upstream/balancer.js';

const kTunnel = Symbol('baton.tunnel');
type ClientSocket = Duplex & { [kTunnel]?: Tunnel };

type WsTarget = TunnelTarget;

/**
 * http-proxy, loaded at the first WebSocket upgrade and kept: with follow-redirects it loads node:https, node:tls
 * and node:crypto, which a worker would otherwise pay for at start whether or not a client ever opens a tunnel.
 * Required from node_modules (the bundle leaves a require by computed path alone), as undici's files are.
 */
const requireHere = createRequire(import.meta.url);
let httpProxyModule: typeof httpProxy | null = null;

/**
 * http-proxy, loaded with `util._extend` swapped for a copy that does not warn. http-proxy takes `util._extend` when
 * it loads and calls it for every tunnel; Node 22 and 24 deprecate it at run time (DEP0060), so each worker's first
 * WebSocket logged a process warning that no operator can act on. Put back once loaded: nothing else sees the swap.
 */
export function loadHttpProxy(): typeof httpProxy {
  const util = requireHere('node:util') as { _extend: unknown };
  const deprecated = util._extend;
  util._extend = extend;
  try {
    return requireHere('http-proxy') as typeof httpProxy;
  } finally {
    util._extend = deprecated;
  }
}

/** What `util._extend` does: `source`'s own enumerable string keys copied onto `target`. */
function extend(target: Record<string, unknown>, source: unknown): Record<string, unknown> {
  if (source === null || typeof source !== 'object') return target;
  for (const key of Object.keys(source)) target[key] = (source as Record<string, unknown>)[key];
  return target;
}


export class Tunnels {
  readonly #ctx: HandlerContext;
  #proxy: httpProxy | null = null;
  /** The open tunnels: counted, closed, moved and adopted there. */
  readonly book: TunnelBook;
  readonly #targets = new WeakMap<Target, WsTarget>();
  constructor(ctx: HandlerContext, labels: readonly string[] = []) {
    this.#ctx = ctx;
    this.book = new TunnelBook(ctx, labels);
  }

  /** The http-proxy server, made at the first tunnel. */
  #proxyServer(): httpProxy {
    if (this.#proxy !== null) return this.#proxy;
    httpProxyModule ??= loadHttpProxy();
    // prependPath false + our own path; no xfwd (we add X-Forwarded-* ourselves); Host kept from the client.
    const proxy = httpProxyModule.createProxyServer({ ws: true, xfwd: false, prependPath: false, changeOrigin: false });
    // Only reached if a callback-less path ever fires: without a listener http-proxy throws (process crash).
    proxy.on('error', (err, _req, socket) => {
      this.#ctx.log.error.warn({ code: errorCode(err), error: err.message }, 'websocket proxy error');
      const s = socket as unknown as Duplex | undefined;
      if (s && typeof s.destroy === 'function') s.destroy();
    });
    proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.#onProxyRequest(proxyReq, socket as ClientSocket));
    this.#proxy = proxy;
    return proxy;
  }

  get open(): number {
    return this.book.size;
  }

  /** Close every tunnel now (the drain deadline). */
  closeAll(): void {
    this.book.closeAll();
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreSocketError);
    try {
      this.#upgrade(req, socket as ClientSocket, head);
    } catch (err) {
      this.#ctx.log.error.error({ err }, 'internal error on an upgrade request');
      answerAndClose(socket, rawError(500, nextRequestId()));
    }
  }

  #upgrade(req: http.IncomingMessage, socket: ClientSocket, head: Buffer): void {
    const upgradeTo = req.headers.upgrade;
    if (req.method === 'CONNECT' || typeof upgradeTo !== 'string' || upgradeTo.toLowerCase() !== 'websocket') {
      servePlain(req, socket, (r, res) => serve(this.#ctx, r, res, Arrival.Detached));
      return;
    }
    const start = performance.now();
    const a = admit(this.#ctx, req, Arrival.Tunnel, peerAddress(req.socket), new Admission());
    const client = a.client;
    const url = req.url ?? '';
    if (a.refusal !== 0) {
      if (a.requestId === '') a.requestId = nextRequestId();
      this.#ctx.log.refused(a.refusal, a.reason, client, { requestId: a.requestId, method: req.method ?? '', url, route: a.entry?.label ?? null });
      return this.#answer(socket, a, req, client, start, a.refusal, rawError(a.refusal, a.requestId));
    }
    if (a.entry === null) return this.#answer(socket, a, req, client, start, 404, rawError(404, a.requestId));
    const action = a.action!;
    if (action.ret !== null) return this.#answer(socket, a, req, client, start, action.ret.status, rawReturn(action.ret, a));
    const upstream = action.upstream;
    if (upstream === null) return this.#answer(socket, a, req, client, start, 502, rawError(502, a.requestId));
    const key = upstream.config.hashKey === null ? undefined : hashKeyOf(upstream.config.hashKey, req.rawHeaders, client, a.target);
    const picked = upstream.balancer.pick(Date.now(), key);
    if (picked === -1) {
      // Every live target at max_connections: 503 (a tunnel does not wait in the queue); none live: 502.
      if (anyUp(upstream.targets, Date.now())) return this.#answer(socket, a, req, client, start, 503, rawError(503, a.requestId));
      logNoLiveTarget(this.#ctx.log, upstream, a.entry.label, a.requestId);
      return this.#answer(socket, a, req, client, start, 502, rawError(502, a.requestId));
    }
    const target = upstream.targets[picked]!;
    const tunnel: Tunnel = {
      client: socket, route: a.entry.index, label: a.entry.label, hostname: a.hostname, requestId: a.requestId, upstreamName: upstream.config.name,
      target, targetAddress: target.address, startedAt: Date.now() - (performance.now() - start), url, clientAddress: client, bytesBefore: 0,
      proxyReq: null, upstreamSocket: null, connected: false, responded: false, upgraded: false, status: 0, counted: true, closed: false, moving: false, moved: false,
    };
    socket[kTunnel] = tunnel;
    this.book.track(tunnel);
    // A handshake answered without a tunnel (a relayed refusal, or our 502/504) ends our side: read the rest.
    socket.once('finish', () => { if (!tunnel.upgraded) lingerClose(socket); });
    // http-proxy copies req.headers into its upstream request: hand it the cleaned, validated set.
    req.headers = toHeaderObject(a.headers) as http.IncomingHttpHeaders;
    req.url = a.target; // the route's path rules (and an absolute-form target's path)
    const ws = this.#wsTarget(target);
    this.#proxyServer().ws(req, socket, head, { target: ws.target as unknown as string, agent: ws.agent }, (err) => this.#failed(tunnel, err));
  }

  /** A raw answer of our own (no tunnel): written, logged, counted, and the socket closed. */
  #answer(socket: Duplex, a: Admission, req: http.IncomingMessage, client: string, start: number, status: number, bytes: Buffer): void {
    answerAndClose(socket, bytes);
    this.#ctx.log.countTunnel(a.entry?.index ?? -1, status);
    this.#ctx.log.access({
      client, method: req.method ?? '', host: a.hostname, path: req.url ?? '', status, bytes: bytes.length,
      duration: ms(start, performance.now()), upstream: a.action?.upstream?.config.name ?? null, target: null,
      upstream_time: null, request_id: a.requestId, protocol: 'HTTP/1.1',
    });
  }

  #wsTarget(target: Target): WsTarget {
    let t = this.#targets.get(target);
    if (t === undefined) {
      t = tunnelTarget(target.endpoint);
      this.#targets.set(target, t);
    }
    return t;
  }

  /** http-proxy created the upstream request; listeners added here run before its own. */
  #onProxyRequest(proxyReq: http.ClientRequest, socket: ClientSocket): void {
    const tunnel = socket[kTunnel];
    if (tunnel === undefined) return;
    tunnel.proxyReq = proxyReq;
    const up = tunnel.target!.upstreamConfig;
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
      // A refused handshake (401, 403, 404...) is relayed; http-proxy pipes the decoded body and then ends the
      // client socket ('finish' then drains and closes it: see #upgrade).
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
      const target = tunnel.target!;
      if (target.fails !== 0 || target.downUntil !== 0) markUp(target);
      cleanTunnelResponseHeaders(res.headers, true);
      if (res.headers['x-request-id'] === undefined) res.headers['x-request-id'] = tunnel.requestId;
      if (tunnel.closed) {
        upstreamSocket.destroy();
        return;
      }
      upstreamSocket.once('close', () => this.book.upstreamClosed(tunnel));
    });
  }

  /** http-proxy's callback: the upstream request or the upstream socket failed. It ends the client socket after us. */
  #failed(tunnel: Tunnel, err: Error): void {
    try {
      let code = errorCode(err);
      if (tunnel.closed || tunnel.client.destroyed) code = CLIENT_GONE;
      const failure = classify(code);
      if (failure.kind !== 'client') this.#ctx.log.upstreamFailure(tunnel.route, failure);
      const fields = {
        code: failure.code === 'UNKNOWN' ? errorCode(err) : failure.code, error: err.message, upstream: tunnel.upstreamName,
        target: tunnel.targetAddress, route: tunnel.label, request_id: tunnel.requestId, path: this.#ctx.log.path(tunnel.url),
      };
      if (failure.kind === 'client') {
        tunnel.client.destroy();
        return;
      }
      if (!tunnel.responded) {
        if (failure.markDown) markDown(tunnel.target!, Date.now());
        this.#ctx.log.error[failure.level](fields, 'websocket upstream failed');
        tunnel.responded = true;
        tunnel.status = failure.status;
        answerAndClose(tunnel.client, rawError(failure.status, tunnel.requestId));
        return;
      }
      this.#ctx.log.error.info(fields, tunnel.upgraded ? 'websocket tunnel closed by an upstream error' : 'websocket handshake relay failed');
      tunnel.client.destroy();
    } catch (bug) {
      this.#ctx.log.error.error({ err: bug }, 'internal error in a websocket failure');
      tunnel.client.destroy();
    }
  }
}
