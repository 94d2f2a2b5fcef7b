/**
 * @module The request path of a worker: `createRequestHandler(config)` compiles routes, return actions and
 * upstream pools once per config snapshot, then serves HTTP requests (exchange.ts), upgrades (websocket.ts)
 * and the HTTP/1 server's own answers (client-error.ts) until `close()`.
 */
import type http from 'node:http';
import type net from 'node:net';
import type stream from 'node:stream';
import type { Config } from '../config/types.js';
import type { Logs } from '../log/logger.js';
import { compileRouter } from './router.js';
import { closeUpstreams, createUpstreams, warmUpstreams } from './upstream/pools.js';
import { HealthChecks, upstreamHealth } from './upstream/health.js';
import type { UpstreamHealth } from '../ipc/messages.js';
import { IdleSweeper } from './idle.js';
import { compileActions } from './route-action.js';
import { TrustedProxies } from './client-address.js';
import { serve, type HandlerContext } from './exchange.js';
import { RequestLog } from './request-log.js';
import { Tunnels } from './websocket.js';
import type { TunnelBook } from './tunnel-book.js';
import { routeLabel } from '../metrics/recorder.js';
import { answerClientError } from './client-error.js';
import { compileRateLimits } from './rate-limit.js';

export interface RequestHandler {
  /** Serve one request (HTTP/1.1, or an HTTP/2 compat request: `:authority`, no connection headers). Never throws. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** An Upgrade or CONNECT request, from the server's 'upgrade' or 'connect' event. Never throws. */
  upgrade(req: http.IncomingMessage, socket: stream.Duplex, head: Buffer): void;
  /** The HTTP/1 parser refused a connection's bytes (the server's 'clientError'): answer, log, count. */
  clientError(err: Error & { code?: string }, socket: net.Socket): void;
  /** WebSocket tunnels open now (handshakes in progress included). */
  openTunnels(): number;
  /** Close every tunnel at once (drain deadline); each one is logged as it closes. */
  closeTunnels(): void;
  /** The tunnels, for the hand-off: moved to another worker when this one drains, adopted from one that drains. */
  readonly tunnels: TunnelBook;
  /** Close all upstream pools (after drain): waits for requests still running on them. */
  close(): Promise<void>;
  /** Every upstream target as this worker sees it (passive marks, active checks), for the master's /status. */
  health(): UpstreamHealth[];
  /** Load what the first request would otherwise load (the upstream pools): once the worker is ready. */
  warm(): void;
}

export function createRequestHandler(config: Config, logs: Logs, info: { generation: number }): RequestHandler {
  const upstreams = createUpstreams(config, logs.error);
  const actions = compileActions(config, upstreams);
  let shortestIdle = config.limits.bodyTimeout > 0 ? config.limits.bodyTimeout : Infinity;
  for (const up of upstreams.values()) if (up.config.idleTimeout > 0) shortestIdle = Math.min(shortestIdle, up.config.idleTimeout);
  const log = new RequestLog(logs, config.log.queryStrings);
  const ctx: HandlerContext = {
    router: compileRouter(config.routes),
    actions,
    log,
    sweeper: new IdleSweeper(Number.isFinite(shortestIdle) ? shortestIdle / 4 : 1000),
    limits: config.limits,
    trusted: config.trustedProxies.length > 0 ? new TrustedProxies(config.trustedProxies) : null,
    rateLimiters: compileRateLimits(config.routes, config.workers, logs.error),
  };
  const checks = new HealthChecks(upstreams.values(), logs.error);
  checks.start();
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => serve(ctx, req, res);
  const tunnels = new Tunnels(ctx, config.routes.map(routeLabel));
  logs.error.debug({ generation: info.generation, routes: config.routes.length, upstreams: upstreams.size }, 'request handler ready');
  return {
    handle,
    upgrade(req, socket, head) {
      tunnels.upgrade(req, socket, head);
    },
    clientError(err, socket) {
      answerClientError(log, err, socket);
    },
    openTunnels: () => tunnels.open,
    closeTunnels() {
      tunnels.closeAll();
    },
    tunnels: tunnels.book,
    health: () => upstreamHealth(upstreams.values(), Date.now()),
    warm() {
      warmUpstreams(upstreams);
    },
    async close() {
      checks.stop();
      ctx.sweeper.close();
      log.flush();
      await closeUpstreams(upstreams);
    },
  };
}
