/**
 * @module Target selection for one upstream: smooth weighted round robin (nginx's), weighted least
 * connections, weighted random, and consistent hashing (hash-ring.ts). A balancer picks the first target to
 * try; `fallbacks` orders the others, so a failed connect simply moves on ("take the next one", as Pingora's
 * `BackendIter`). Targets marked down (passive or active health, see pools.ts) or at their `max_connections` are
 * skipped; when none is left `pick` returns -1: every target down is answered 502 at once (nginx's "no live
 * upstreams") instead of waiting on a dead target, every live one full waits in the queue (queue.ts) or gets 503.
 */
import type { Balance } from '../../config/types.js';
import { HashRing } from './hash-ring.js';

/** What a balancer reads of a target; pools.ts keeps these fields up to date. */
export interface BalancedTarget {
  readonly weight: number;
  /** Requests (and tunnels) in flight on this target, from this worker. */
  inflight: number;
  /** `Date.now()` before which the target counts as down; 0 when healthy. */
  downUntil: number;
  /** In-flight requests allowed from this worker; 0 = no cap. */
  readonly maxConnections: number;
  /** What the hash ring places the target by (its URL): the same target keeps its keys across reloads. */
  readonly url: string;
}

export interface Balancer {
  /** Index of the first target to try, or -1 when every target is down or full. `key`: `balance: hash` only. */
  pick(now: number, key?: string): number;
  /** The targets to try after `first` failed, in order (see `fallbacks` below). */
  fallbacks(first: number, now: number, key?: string): number[];
}

/** Neither down nor at its cap: a request may go there now. */
export function usable(t: BalancedTarget, now: number): boolean {
  return t.downUntil <= now && (t.maxConnections === 0 || t.inflight < t.maxConnections);
}

/** Some target is up (a -1 from `pick` then means they are all full, not all down). */
export function anyUp(targets: readonly BalancedTarget[], now: number): boolean {
  for (const t of targets) if (t.downUntil <= now) return true;
  return false;
}

export function createBalancer(kind: Balance, targets: readonly BalancedTarget[]): Balancer {
  switch (kind) {
    case 'round_robin': return new SmoothRoundRobin(targets);
    case 'least_conn': return new LeastConn(targets);
    case 'random': return new WeightedRandom(targets);
    case 'hash': return new HashRing(targets, new SmoothRoundRobin(targets));
  }
}

/** Ring order after `first`: the common `fallbacks` of the balancers that have no order of their own. */
abstract class RingFallbacks implements Balancer {
  protected readonly targets: readonly BalancedTarget[];

  constructor(targets: readonly BalancedTarget[]) {
    this.targets = targets;
  }

  abstract pick(now: number, key?: string): number;

  fallbacks(first: number, now: number): number[] {
    return fallbacks(this.targets, first, now);
  }
}

/**
 * nginx's smooth weighted round robin: every pick adds each weight to its target's score, takes the highest
 * score and subtracts the total from it. Weights 5,1,1 give a,a,b,a,c,a,a: spread out, never bursts of 5.
 */
export class SmoothRoundRobin extends RingFallbacks {
  readonly #current: Float64Array;

  constructor(targets: readonly BalancedTarget[]) {
    super(targets);
    this.#current = new Float64Array(targets.length);
  }

  pick(now: number): number {
    const targets = this.targets;
    if (targets.length === 1) return usable(targets[0]!, now) ? 0 : -1;
    const current = this.#current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      if (!usable(t, now)) continue;
      current[i]! += t.weight;
      total += t.weight;
      if (best === -1 || current[i]! > current[best]!) best = i;
    }
    if (best !== -1) current[best]! -= total;
    return best;
  }
}

/** Fewest in-flight requests relative to weight; ties go round robin so equal targets share the load. */
class LeastConn extends RingFallbacks {
  #next = 0;

  pick(now: number): number {
    const targets = this.targets;
    const n = targets.length;
    if (n === 1) return usable(targets[0]!, now) ? 0 : -1;
    const start = this.#next;
    this.#next = start + 1 === n ? 0 : start + 1;
    let best = -1;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      const t = targets[i]!;
      if (!usable(t, now)) continue;
      // inflight/weight < best.inflight/best.weight, without division.
      if (best === -1 || t.inflight * targets[best]!.weight < targets[best]!.inflight * t.weight) best = i;
    }
    return best;
  }
}

class WeightedRandom extends RingFallbacks {
  pick(now: number): number {
    const targets = this.targets;
    if (targets.length === 1) return usable(targets[0]!, now) ? 0 : -1;
    let total = 0;
    for (let i = 0; i < targets.length; i++) if (usable(targets[i]!, now)) total += targets[i]!.weight;
    let r = Math.random() * total;
    let last = -1;
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      if (!usable(t, now)) continue;
      last = i;
      r -= t.weight;
      if (r < 0) return i;
    }
    return last; // floating-point leftovers
  }
}

/**
 * The targets to try after `first` failed, in order: the ones not marked down, in ring order after `first`
 * (so failovers spread instead of all landing on target 0). A target known to be down is not tried.
 */
export function fallbacks(targets: readonly BalancedTarget[], first: number, now: number): number[] {
  const n = targets.length;
  const healthy: number[] = [];
  for (let k = 1; k < n; k++) {
    const i = (first + k) % n;
    if (targets[i]!.downUntil <= now) healthy.push(i);
  }
  return healthy;
}
