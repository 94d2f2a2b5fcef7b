/**
 * @module The upstreams of one worker: one connection pool per target (we balance ourselves, so no
 * BalancedPool): an H1Pool for HTTP/1.1 (TCP, TLS or a unix socket), an H2Pool for HTTP/2; the per-target
 * counters the balancers read, the upstream's queue, and health: passive (nginx's `max_fails` failures within
 * `fail_timeout` take a target out for `fail_timeout`) and active (health.ts sets `checkDown`). Both end up in the
 * one field the balancers read on the hot path, `downUntil`.
 */
import type { Dispatcher } from 'undici';
import type { Config, TargetConfig, UpstreamConfig } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import { recorder } from '../../metrics/recorder.js';
import { createBalancer, type BalancedTarget, type Balancer } from './balancer.js';
import { endpointOf, type TargetEndpoint } from './connect.js';
import { H1Pool } from './h1-pool.js';
import { H2Pool, type TargetPool } from './h2-pool.js';
import { WaitQueue } from './queue.js';

/**
 * Connections per (worker, target). Bounded so that a slow or stuck upstream cannot eat the worker's file
 * descriptors (requests beyond the bound wait in the pool's queue instead of failing), and high enough that
 * long-polls and server-sent events, which hold a connection each with `pipelining: 1`, do not starve the
 * queue: a keep-alive upstream needs a few dozen connections for full throughput, 512 leaves a wide margin.
 */
export const CONNECTIONS_PER_TARGET = 512;

/** A target taken out by active health checks stays out until a check brings it back. */
const UNTIL_CHECKED = Number.MAX_SAFE_INTEGER;

export interface Target extends BalancedTarget {
  readonly index: number;
  readonly origin: string;
  /** `host:port` (or `unix:/path`) as written in logs. */
  readonly address: string;
  /** How its connections are opened. */
  readonly endpoint: TargetEndpoint;
  /** The configuration of the upstream this target belongs to (the runtime one is an `Upstream`). */
  readonly upstreamConfig: UpstreamConfig;
  /** Passive health: failures counted since `firstFailAt`. */
  fails: number;
  firstFailAt: number;
  /** Active health checks say it is down (then `downUntil` is "forever" until a check passes). */
  checkDown: boolean;
  /** When its health last changed (ms) and why (null: healthy from the start); for /status (health.ts). */
  healthSince: number;
  healthWhy: string | null;
  /** Made at the first request or once the worker is ready (PoolOnFirstUse). */
  pool: TargetPool;
}

export interface Upstream {
  readonly config: UpstreamConfig;
  readonly targets: readonly Target[];
  readonly balancer: Balancer;
  /** Requests waiting for a target under its `max_connections` (null: no queue, 503 at once). */
  readonly queue: WaitQueue | null;
  /** When "no live upstream target" (or "queue full") was last logged (rate limit). */
  noLiveLoggedAt: number;
}

/**
 * A target's pool until its first request or `warmUpstreams`, whichever comes first. Made when undici's pools
 * (which load node:http2) added a third of a worker's start-up CPU; our own pools load nothing until they
 * connect (node:tls for https targets, node:http2 for http2 upstreams), so this now only defers small objects.
 */
class PoolOnFirstUse implements TargetPool {
  readonly #target: Target;
  constructor(target: Target) {
    this.#target = target;
  }
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return realPool(this.#target).dispatch(opts, handler);
  }
  close(): Promise<void> {
    // Nothing was ever opened: the target is left with a pool that refuses requests, as a closed one does.
    return realPool(this.#target).close();
  }
}

function realPool(target: Target): TargetPool {
  if (target.pool instanceof PoolOnFirstUse) target.pool = createPool(target.upstreamConfig, target, target.endpoint);
  return target.pool;
}

/** Create every target's pool now (the worker does it once it is ready, before its first request if it can). */
export function warmUpstreams(upstreams: Map<string, Upstream>): void {
  for (const up of upstreams.values()) for (const t of up.targets) realPool(t);
}

/** Connections a pool of this target may open. */
function connectionsOf(t: Pick<TargetConfig, 'maxConnections'>): number {
  return t.maxConnections > 0 ? Math.min(t.maxConnections, CONNECTIONS_PER_TARGET) : CONNECTIONS_PER_TARGET;
}

/** A pool for one target, of the upstream's protocol (both our own: h1-pool.ts, h2-pool.ts). */
export function createPool(up: UpstreamConfig, t: Pick<TargetConfig, 'maxConnections'>, endpoint: TargetEndpoint): TargetPool {
  return up.protocol === 'http2' ? new H2Pool(up, endpoint) : new H1Pool(up, endpoint, connectionsOf(t));
}

function createTarget(up: UpstreamConfig, t: TargetConfig, index: number): Target {
  const endpoint = endpointOf(up, t);
  const target: Target = {
    index,
    origin: t.origin,
    url: t.url,
    address: t.socketPath !== null ? `unix:${t.socketPath}` : new URL(t.origin).host,
    endpoint,
    weight: t.weight,
    maxConnections: t.maxConnections,
    inflight: 0,
    downUntil: 0,
    upstreamConfig: up,
    fails: 0,
    firstFailAt: 0,
    checkDown: false,
    healthSince: Date.now(),
    healthWhy: null,
    pool: null as unknown as TargetPool,
  };
  target.pool = new PoolOnFirstUse(target);
  return target;
}

/** `log`: where the explicit opt-outs (`tls.verify: false`) are said once per worker. */
export function createUpstreams(config: Config, log?: Logger): Map<string, Upstream> {
  const map = new Map<string, Upstream>();
  for (const name of Object.keys(config.upstreams)) {
    const up = config.upstreams[name]!;
    const targets = up.targets.map((t, i) => createTarget(up, t, i));
    const queue = up.queue === null ? null : new WaitQueue(up.queue, (delta) => recorder.queueDepth(name, delta));
    map.set(name, { config: up, targets, balancer: createBalancer(up.balance, targets), queue, noLiveLoggedAt: 0 });
    if (up.tls !== null && !up.tls.verify) log?.warn({ upstream: name }, 'tls.verify is false: the certificates of this upstream\'s https targets are not checked (anyone on the path can impersonate them)');
  }
  return map;
}

/**
 * Passive health: count one failure (connect refused or timed out, no response headers in time, a reset that
 * a retry did not cure); `max_fails` of them within `fail_timeout` take the target out for `fail_timeout`.
 * As in nginx, an upstream with a single target is never taken out passively: there is nothing better to try,
 * and a 502 for every request of the next `fail_timeout` would outlast a quick restart. Returns true when this
 * failure took the target out.
 */
export function markDown(target: Target, now: number): boolean {
  const c = target.upstreamConfig;
  if (c.maxFails === 0 || c.targets.length < 2 || target.checkDown) return false;
  if (target.fails === 0 || now - target.firstFailAt > c.failTimeout) {
    target.fails = 0;
    target.firstFailAt = now;
  }
  if (++target.fails < c.maxFails) return false;
  target.fails = 0;
  target.downUntil = now + c.failTimeout;
  target.healthSince = now;
  target.healthWhy = `${c.maxFails} failure(s) within fail_timeout`;
  return true;
}

/** A response arrived: the failure count starts over and a passive mark is lifted (an active one is not). */
export function markUp(target: Target): void {
  target.fails = 0;
  if (!target.checkDown && target.downUntil !== 0) {
    const now = Date.now();
    target.healthSince = Math.min(now, target.downUntil);
    target.healthWhy = target.downUntil <= now ? 'fail_timeout passed' : 'a response arrived';
    target.downUntil = 0;
  }
}

/** Active health checks decided: take the target out until a check passes, or bring it back. */
export function setChecked(target: Target, down: boolean, why?: string): void {
  target.healthSince = Date.now();
  target.healthWhy = why ?? (down ? 'health check failed' : 'health check passed');
  target.checkDown = down;
  target.fails = 0;
  target.downUntil = down ? UNTIL_CHECKED : 0;
}

/**
 * Dispatch the one retry after a reset (typically the keep-alive race: the upstream closed the idle connection
 * we reused) on a client of its own, so that it runs on a new connection and not on another idle one that may
 * be just as stale. The client closes once that request is done (retries are rare: no pool of them is kept).
 */
export function dispatchFresh(target: Target, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
  // HTTP/2: the broken connection has left the pool already; a new stream goes on a healthy or a new one.
  if (target.upstreamConfig.protocol === 'http2') {
    target.pool.dispatch(opts, handler);
    return;
  }
  const pool = new H1Pool(target.upstreamConfig, target.endpoint, 1);
  pool.dispatch(opts, handler);
  pool.close().catch(() => {});
}

/** The candidates after `first`, healthy ones only, in the balancer's order (allocated only on the failure path). */
export function nextTargets(up: Upstream, first: number, now: number, key?: string): number[] {
  return up.balancer.fallbacks(first, now, key);
}

export async function closeUpstreams(upstreams: Map<string, Upstream>): Promise<void> {
  const closing: Promise<void>[] = [];
  for (const up of upstreams.values()) {
    up.queue?.clear();
    for (const t of up.targets) closing.push(t.pool.close().catch(() => {}));
  }
  await Promise.all(closing);
}
