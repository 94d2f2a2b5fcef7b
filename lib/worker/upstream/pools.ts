/**
 * @module The upstreams of one worker: one undici `Pool` per target origin (we balance ourselves, so no
 * BalancedPool), the per-target counters the balancers read, and health: passive (nginx's `max_fails`
 * failures within `fail_timeout` take a target out for `fail_timeout`) and active (health.ts sets
 * `checkDown`). Both end up in the one field the balancers read on the hot path, `downUntil`.
 */
import { Client, Pool, type Dispatcher } from 'undici';
import type { Config, TargetConfig, UpstreamConfig } from '../../config/types.js';
import { createBalancer, fallbacks, type BalancedTarget, type Balancer } from './balancer.js';

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
  /** `host:port` as written in logs. */
  readonly address: string;
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
  /** Replaced if undici ever wedges it (see `replacePool`). */
  pool: Pool;
}

export interface Upstream {
  readonly config: UpstreamConfig;
  readonly targets: readonly Target[];
  readonly balancer: Balancer;
  /** When "no live upstream target" was last logged (rate limit). */
  noLiveLoggedAt: number;
}

export function poolOptions(up: UpstreamConfig): Pool.Options {
  const keepAlive = up.keepaliveTimeout > 0;
  return {
    connections: CONNECTIONS_PER_TARGET,
    // 1 = keep-alive without pipelining (no head-of-line blocking between clients); 0 = no keep-alive at all.
    pipelining: keepAlive ? 1 : 0,
    keepAliveTimeout: keepAlive ? up.keepaliveTimeout : 1,
    // The upstream's own `Keep-Alive: timeout=` hint must not stretch our configured value.
    keepAliveMaxTimeout: keepAlive ? up.keepaliveTimeout : 1,
    connectTimeout: up.connectTimeout,
    headersTimeout: up.responseTimeout,
    bodyTimeout: up.idleTimeout,
    strictContentLength: true,
  };
}

function createTarget(up: UpstreamConfig, t: TargetConfig, index: number): Target {
  const url = new URL(t.origin);
  return {
    index,
    origin: t.origin,
    address: url.host,
    weight: t.weight,
    inflight: 0,
    downUntil: 0,
    upstreamConfig: up,
    fails: 0,
    firstFailAt: 0,
    checkDown: false,
    healthSince: Date.now(),
    healthWhy: null,
    pool: new Pool(t.origin, poolOptions(up)),
  };
}

export function createUpstreams(config: Config): Map<string, Upstream> {
  const map = new Map<string, Upstream>();
  for (const name of Object.keys(config.upstreams)) {
    const up = config.upstreams[name]!;
    const targets = up.targets.map((t, i) => createTarget(up, t, i));
    map.set(name, { config: up, targets, balancer: createBalancer(up.balance, targets), noLiveLoggedAt: 0 });
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
  const { connections: _c, ...options } = poolOptions(target.upstreamConfig);
  const client = new Client(target.origin, { ...options, pipelining: 0 });
  try {
    client.dispatch(opts, handler);
  } finally {
    client.close().catch(() => {});
  }
}

/** The candidates after `first`, healthy first (allocated only on the failure path). */
export function nextTargets(up: Upstream, first: number, now: number): number[] {
  return fallbacks(up.targets, first, now);
}

/**
 * Swap in a fresh pool after undici refused a request's arguments: undici 7.30 leaves a never-connected client
 * in the pool for each such request (no client ever connects or leaves), and a bounded pool eventually hangs.
 * Requests already running on the old pool finish there.
 */
export function replacePool(up: Upstream, target: Target): void {
  const old = target.pool;
  target.pool = new Pool(target.origin, poolOptions(up.config));
  old.close().catch(() => {});
}

export async function closeUpstreams(upstreams: Map<string, Upstream>): Promise<void> {
  const closing: Promise<void>[] = [];
  for (const up of upstreams.values()) for (const t of up.targets) closing.push(t.pool.close().catch(() => {}));
  await Promise.all(closing);
}
