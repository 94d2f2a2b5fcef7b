/**
 * @module WebSocket tunnels (`Upgrade: websocket`) through http-proxy's `ws()`: admitted like every request
 * (admission.ts: the same Host, path, limits and framing checks, plus GET only and no body), a raw `HTTP/1.1 502`
 * when the upstream cannot be reached, non-101 handshake answers relayed, every answer logged and counted, and
 * every open tunnel tracked so the worker can count and close them. Other upgrades and CONNECT are answered as
 * plain requests (upgrade-socket.ts). http-proxy crashes the process on an unhandled 'error': there is always a
 * callback, a server-level 'error' listener and an 'error' listener on each socket.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import { Admission, admit, Arrival } from './admission.js';
import { logNoLiveTarget } from './attempt.js';
import { CLIENT_GONE, classify, coded, errorCode } from './errors.js';
import { serve, type HandlerContext } from './exchange.js';
import { cleanTunnelResponseHeaders, nextRequestId, toHeaderObject } from './headers.js';
import { peerAddress } from './client-address.js';
import { ms } from './access-log.js';
import { rawError, rawReturn } from './respond.js';
import { answerAndClose, lingerClose, servePlain } from './upgrade-socket.js';
import { markDown, markUp, type Target, type Upstream } from './upstream/pools.js';
import { tunnelTarget, type TunnelTarget } from './upstream/connect.js';
import { hashKeyOf } from './upstream/hash-key.js';
import { anyUp } from './upstream/balancer.js';

const kTunnel = Symbol('baton.tunnel');
type ClientSocket = Duplex & { [kTunnel]?: Tunnel };

interface Tunnel {
  readonly client: ClientSocket;
  readonly admission: Admission;
  readonly upstream: Upstream;
  readonly target: Target;
  readonly start: number;
  readonly url: string;
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

type WsTarget = TunnelTarget;

/** Socket errors are expected (resets); the tunnel's 'close' does the cleanup. The listener must exist. */
function ignoreSocketError(): void {}

export class Tunnels {
  readonly #ctx: HandlerContext;
  readonly #proxy: httpProxy;
  readonly #open = new Set<Tunnel>();
  readonly #targets = new WeakMap<Target, WsTarget>();

  constructor(ctx: HandlerContext) {
    this.#ctx = ctx;
    // prependPath false + our own path; no xfwd (we add X-Forwarded-* ourselves); Host kept from the client.
    this.#proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, prependPath: false, changeOrigin: false });
    // Only reached if a callback-less path ever fires: without a listener http-proxy throws (process crash).
    this.#proxy.on('error', (err, _req, socket) => {
      ctx.log.error.warn({ code: errorCode(err), error: err.message }, 'websocket proxy error');
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
      client: socket, admission: a, upstream, target, start, url, clientAddress: client,
      proxyReq: null, upstreamSocket: null, connected: false, responded: false, upgraded: false, status: 0, counted: true, closed: false,
    };
    target.inflight++; // least_conn sees long-lived tunnels too
    socket[kTunnel] = tunnel;
    this.#open.add(tunnel);
    socket.once('close', () => this.#closed(tunnel));
    // A handshake answered without a tunnel (a relayed refusal, or our 502/504) ends our side: read the rest.
    socket.once('finish', () => { if (!tunnel.upgraded) lingerClose(socket); });
    // http-proxy copies req.headers into its upstream request: hand it the cleaned, validated set.
    req.headers = toHeaderObject(a.headers) as http.IncomingHttpHeaders;
    req.url = a.target; // the route's path rules (and an absolute-form target's path)
    const ws = this.#wsTarget(target);
    this.#proxy.ws(req, socket, head, { target: ws.target as unknown as string, agent: ws.agent }, (err) => this.#failed(tunnel, err));
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
      // A refused handshake (401, 403, 404...) is relayed; http-proxy pipes the decoded body and then ends the
      // client socket ('finish' then drains and closes it: see #upgrade).
      tunnel.responded = true;
      tunnel.status = res.statusCode ?? 0;
      cleanTunnelResponseHeaders(res.headers, false);
      if (res.headers['x-request-id'] === undefined) res.headers['x-request-id'] = tunnel.admission.requestId;
    });
    proxyReq.on('upgrade', (res: http.IncomingMessage, upstreamSocket: net.Socket) => {
      tunnel.responded = true;
      tunnel.upgraded = true;
      tunnel.status = 101;
      tunnel.upstreamSocket = upstreamSocket;
      upstreamSocket.on('error', ignoreSocketError);
      if (tunnel.target.fails !== 0 || tunnel.target.downUntil !== 0) markUp(tunnel.target);
      cleanTunnelResponseHeaders(res.headers, true);
      if (res.headers['x-request-id'] === undefined) res.headers['x-request-id'] = tunnel.admission.requestId;
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
      if (failure.kind !== 'client') this.#ctx.log.upstreamFailure(tunnel.admission.entry!.index, failure);
      const fields = {
        code: failure.code === 'UNKNOWN' ? errorCode(err) : failure.code, error: err.message, upstream: tunnel.upstream.config.name,
        target: tunnel.target.address, route: tunnel.admission.entry!.label, request_id: tunnel.admission.requestId, path: this.#ctx.log.path(tunnel.url),
      };
      if (failure.kind === 'client') {
        tunnel.client.destroy();
        return;
      }
      if (!tunnel.responded) {
        if (failure.markDown) markDown(tunnel.target, Date.now());
        this.#ctx.log.error[failure.level](fields, 'websocket upstream failed');
        tunnel.responded = true;
        tunnel.status = failure.status;
        answerAndClose(tunnel.client, rawError(failure.status, tunnel.admission.requestId));
        return;
      }
      this.#ctx.log.error.info(fields, tunnel.upgraded ? 'websocket tunnel closed by an upstream error' : 'websocket handshake relay failed');
      tunnel.client.destroy();
    } catch (bug) {
      this.#ctx.log.error.error({ err: bug }, 'internal error in a websocket failure');
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
    const a = tunnel.admission;
    const status = tunnel.status === 0 ? 499 : tunnel.status;
    this.#ctx.log.countTunnel(a.entry!.index, status);
    if (status === 499) this.#ctx.log.abandoned();
    this.#ctx.log.access({
      client: tunnel.clientAddress, method: 'GET', host: a.hostname, path: tunnel.url, status,
      // The socket belongs to this tunnel alone, so its counter is exact (handshake answer included).
      bytes: (tunnel.client as Partial<net.Socket>).bytesWritten ?? 0,
      duration: ms(tunnel.start, performance.now()), upstream: tunnel.upstream.config.name, target: tunnel.target.address,
      upstream_time: null, request_id: a.requestId, protocol: 'HTTP/1.1',
    });
  }
}
