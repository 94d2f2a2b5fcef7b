/**
 * @module Hand-built normalized configs and in-memory logs for worker tests (independent of the config loader),
 * plus small real-socket helpers: upstream servers, the proxy in front of them, raw clients.
 */
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Test } from 'tap';
import type { Balance, ClientLimits, Config, HashKey, HealthCheckConfig, QueueConfig, RetryConfig, ReturnAction, RouteConfig, UpstreamConfig, UpstreamProtocol, UpstreamTlsConfig } from '../../../lib/config/types.js';
import { DEFAULT_RETRY } from '../../../lib/config/sections/upstream-policy.js';
import { DEFAULT_LIMITS } from '../../../lib/config/sections/limits.js';
import { ROUTE_RULE_DEFAULTS } from '../../../lib/config/defaults.js';
import type { Logs } from '../../../lib/log/logger.js';
import { createRequestHandler, type RequestHandler } from '../../../lib/worker/handler.js';

export interface UpstreamOptions {
  balance?: Balance;
  weights?: number[];
  connectTimeout?: number;
  responseTimeout?: number;
  idleTimeout?: number;
  keepaliveTimeout?: number;
  maxFails?: number;
  failTimeout?: number;
  healthCheck?: HealthCheckConfig | null;
  hashKey?: HashKey;
  protocol?: UpstreamProtocol;
  tls?: UpstreamTlsConfig | null;
  maxConnections?: number[];
  queue?: QueueConfig | null;
  retry?: Partial<RetryConfig>;
}

export function upstream(name: string, origins: string[], o: UpstreamOptions = {}): UpstreamConfig {
  return {
    name,
    balance: o.balance ?? 'round_robin',
    hashKey: o.hashKey ?? null,
    protocol: o.protocol ?? 'http1',
    targets: origins.map((origin, i) => ({
      url: origin,
      origin: origin.startsWith('unix:') ? 'http://localhost' : origin,
      socketPath: origin.startsWith('unix:') ? origin.slice(5) : null,
      weight: o.weights?.[i] ?? 1,
      maxConnections: o.maxConnections?.[i] ?? 0,
    })),
    tls: o.tls ?? null,
    connectTimeout: o.connectTimeout ?? 2000,
    responseTimeout: o.responseTimeout ?? 5000,
    idleTimeout: o.idleTimeout ?? 5000,
    keepaliveTimeout: o.keepaliveTimeout ?? 4000,
    maxFails: o.maxFails ?? 1,
    failTimeout: o.failTimeout ?? 10_000,
    healthCheck: o.healthCheck ?? null,
    queue: o.queue ?? null,
    retry: { ...DEFAULT_RETRY, ...o.retry },
  };
}

/** `rules`: any of the route's rules (redirect, access, header and path rules, compress) over their defaults. */
export function route(path: string, to: { host?: string; upstream?: string; return?: Partial<ReturnAction> & { status: number }; maxBodySize?: number; rules?: Partial<RouteConfig> }): RouteConfig {
  return {
    ...ROUTE_RULE_DEFAULTS,
    host: to.host ?? null,
    path,
    upstream: to.upstream ?? null,
    return: to.return ? { status: to.return.status, body: to.return.body ?? '', headers: to.return.headers ?? {} } : null,
    maxBodySize: to.maxBodySize ?? 0,
    rateLimit: null,
    ...to.rules,
  };
}

export function makeConfig(upstreams: UpstreamConfig[], routes: RouteConfig[], limits: Partial<ClientLimits> = {}, top: Partial<Pick<Config, 'trustedProxies' | 'compression'>> = {}): Config {
  return {
    file: '/test/baton.yaml',
    pidFile: '/test/baton.pid',
    workers: 1,
    shutdownTimeout: 5000,
    upgradeTimeout: 5000,
    user: null,
    log: { level: 'debug', error: { kind: 'stderr' }, access: { kind: 'stdout' }, queryStrings: true },
    admin: null,
    listeners: [],
    limits: { ...DEFAULT_LIMITS, ...limits },
    drain: { handoff: true },
    upstreams: Object.fromEntries(upstreams.map((u) => [u.name, u])),
    routes,
    trustedProxies: top.trustedProxies ?? [],
    compression: top.compression ?? null,
  };
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface MemoryLogs {
  readonly logs: Logs;
  readonly errors: LogLine[];
  readonly access: LogLine[];
}

function sink(into: LogLine[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') into.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
}

/** Logs shaped like lib/log's, written to arrays (synchronously enough for tests: lines land before the next tick). */
export function memoryLogs(withAccess = true): MemoryLogs {
  const errors: LogLine[] = [];
  const access: LogLine[] = [];
  const error = pino({ level: 'debug', base: null, formatters: { level: (label) => ({ level: label }) } }, sink(errors));
  const acc = withAccess ? pino({ base: null }, sink(access)) : null;
  return { logs: { error, access: acc, reopen() {}, flush() {} }, errors, access };
}

/**
 * Listen on 127.0.0.1:0. At teardown every connection the server accepted (upgraded ones included, which
 * `closeAllConnections` does not see) is destroyed, then the server is closed.
 */
export function listen(t: Test, server: net.Server, host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** A real upstream on 127.0.0.1:0; returns its origin. */
export async function startUpstream(t: Test, handler: http.RequestListener, onServer?: (s: http.Server) => void): Promise<{ origin: string; server: http.Server }> {
  const server = http.createServer(handler);
  onServer?.(server);
  const port = await listen(t, server);
  return { origin: `http://127.0.0.1:${port}`, server };
}

/** A port that refuses connections: bound, then closed. */
export async function deadOrigin(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

export interface Front {
  readonly port: number;
  readonly handler: RequestHandler;
  readonly mem: MemoryLogs;
  readonly server: http.Server;
}

/** The handler in front of the upstreams, as the worker wires it: request + upgrade events of an http.Server. */
export async function startProxy(t: Test, config: Config, serverOptions: http.ServerOptions = {}): Promise<Front> {
  const mem = memoryLogs();
  const handler = createRequestHandler(config, mem.logs, { generation: 1 });
  const server = http.createServer(serverOptions, (req, res) => handler.handle(req, res));
  server.on('upgrade', (req, socket, head) => handler.upgrade(req, socket, head));
  // Registered before listen(): teardowns run last-in first-out, so sockets and server go first, pools last.
  t.teardown(async () => {
    handler.closeTunnels();
    await handler.close();
  });
  const port = await listen(t, server);
  return { port, handler, mem, server };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** One request on a fresh connection (no agent), bounded by `timeout`. */
export function request(port: number, opts: http.RequestOptions & { body?: Buffer | string | null; timeout?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, timeout = 5000, ...rest } = opts;
    const req = http.request({ host: '127.0.0.1', port, agent: false, ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`client timeout after ${timeout} ms`)));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** A raw TCP exchange: write `data`, collect what comes back until the peer closes or `until` matches. */
export function raw(port: number, data: string | Buffer, until?: (received: string) => boolean, timeout = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`raw timeout; got ${JSON.stringify(got)}`));
    }, timeout);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (until?.(got)) done();
    });
    s.on('end', done);
    s.on('close', done);
    s.on('error', () => done());
    s.write(data);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until `cond` holds, or fail after `timeout`. */
export async function until(cond: () => boolean, timeout = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeout;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
