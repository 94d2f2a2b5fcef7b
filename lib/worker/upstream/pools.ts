/**
 * @module The upstreams of one worker: one undici `Pool` per target origin (we balance ourselves, so no
 * BalancedPool), the per-target counters the balancers read, and passive health (a target that refused or
 * timed out a connection is skipped for a while, like nginx's `max_fails=1 fail_timeout=10s`).
 */
import { Pool } from 'undici';
import type { Config, TargetConfig, UpstreamConfig } from '../../config/types.js';
import { createBalancer, fallbacks, type BalancedTarget, type Balancer } from './balancer.js';

/**
 * Connections per (worker, target). Bounded so that a slow or stuck upstream cannot eat the worker's file
 * descriptors (requests beyond the bound wait in the pool's queue instead of failing), and high enough that
 * long-polls and server-sent events, which hold a connection each with `pipelining: 1`, do not starve the
 * queue: a keep-alive upstream needs a few dozen connections for full throughput, 512 leaves a wide margin.
 */
export const CONNECTIONS_PER_TARGET = 512;

/** How long a target that failed to connect is skipped (unless every target of its upstream is down). */
export const FAIL_TIMEOUT_MS = 10_000;

export interface Target extends BalancedTarget {
  readonly index: number;
  readonly origin: string;
  /** `host:port` as written in logs. */
  readonly address: string;
  /** Replaced if undici ever wedges it (see `replacePool`). */
  pool: Pool;
}

export interface Upstream {
  readonly config: UpstreamConfig;
  readonly targets: readonly Target[];
  readonly balancer: Balancer;
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
    pool: new Pool(t.origin, poolOptions(up)),
  };
}

export function createUpstreams(config: Config): Map<string, Upstream> {
  const map = new Map<string, Upstream>();
  for (const name of Object.keys(config.upstreams)) {
    const up = config.upstreams[name]!;
    const targets = up.targets.map((t, i) => createTarget(up, t, i));
    map.set(name, { config: up, targets, balancer: createBalancer(up.balance, targets) });
  }
  return map;
}

export function markDown(target: Target, now: number): void {
  target.downUntil = now + FAIL_TIMEOUT_MS;
}

export function markUp(target: Target): void {
  if (target.downUntil !== 0) target.downUntil = 0;
}

/** The candidates after `first`, healthy first (allocated only on the failure path). */
export function nextTargets(up: Upstream, first: number, now: number): number[] {
  return fallbacks(up.targets, first, now);
}

/**
 * Swap in a fresh pool after undici refused a request's arguments: undici 7.30 leaves a never-connected client
 * in the pool for each such request, and a bounded pool eventually hangs (research/node-facts.md §2). Requests
 * already running on the old pool finish there.
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
