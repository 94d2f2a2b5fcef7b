/**
 * @module `balance: hash`: consistent hashing on a ring with virtual nodes, as nginx's `hash ... consistent`
 * (ketama). Each target owns 160 points per unit of weight, placed by hashing its URL, so the ring does not
 * depend on the order of the targets in the file; a key goes to the owner of the first point at or after its
 * hash. A target that is down or full is skipped by walking on clockwise: only its own keys move, to the targets
 * that follow its points, and they come back when it does. Removing one of N targets moves about 1/N of the keys.
 */
import { usable, type BalancedTarget, type Balancer } from './balancer.js';

/** Points per unit of weight (nginx and ketama use 160). */
export const POINTS_PER_WEIGHT = 160;
/** A ring never holds more points than this: weights are scaled down to fit. */
const MAX_POINTS = 160_000;

/**
 * 32-bit FNV-1a over the string's UTF-16 code units, then murmur3's finalizer (FNV alone clusters keys that
 * differ in their last characters, such as paths, on nearby points). No allocation: this runs once a request.
 */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashRing implements Balancer {
  readonly #targets: readonly BalancedTarget[];
  /** Point positions, ascending, and the index of the target owning each. */
  readonly #points: Uint32Array;
  readonly #owners: Int32Array;
  /** For requests without a key (no such header or cookie): spread them, rather than send them all to one target. */
  readonly #keyless: Balancer;

  constructor(targets: readonly BalancedTarget[], keyless: Balancer) {
    this.#targets = targets;
    this.#keyless = keyless;
    const totalWeight = targets.reduce((n, t) => n + t.weight, 0);
    const scale = Math.min(1, MAX_POINTS / (POINTS_PER_WEIGHT * Math.max(1, totalWeight)));
    const pairs: [number, number][] = [];
    targets.forEach((t, index) => {
      const n = Math.max(1, Math.round(POINTS_PER_WEIGHT * t.weight * scale));
      for (let i = 0; i < n; i++) pairs.push([hash32(`${t.url}#${i}`), index]);
    });
    // Ties (two targets on one point) are broken by URL order, so that every worker builds the same ring.
    pairs.sort((a, b) => a[0] - b[0] || (targets[a[1]]!.url < targets[b[1]]!.url ? -1 : 1));
    this.#points = Uint32Array.from(pairs, (p) => p[0]);
    this.#owners = Int32Array.from(pairs, (p) => p[1]);
  }

  /** Index of the first point at or after `h` (wrapping to 0). */
  #start(h: number): number {
    const points = this.#points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }

  pick(now: number, key?: string): number {
    if (key === undefined || key === '') return this.#keyless.pick(now);
    const owners = this.#owners;
    const targets = this.#targets;
    const n = owners.length;
    let p = this.#start(hash32(key));
    for (let k = 0; k < n; k++, p = p + 1 === n ? 0 : p + 1) {
      const i = owners[p]!;
      if (usable(targets[i]!, now)) return i;
    }
    return -1;
  }

  /** The targets after `first`, clockwise from the key's point: where its keys go when it is out. */
  fallbacks(first: number, now: number, key?: string): number[] {
    if (key === undefined || key === '') return this.#keyless.fallbacks(first, now);
    const owners = this.#owners;
    const targets = this.#targets;
    const n = owners.length;
    const seen = new Set<number>([first]);
    const out: number[] = [];
    let p = this.#start(hash32(key));
    for (let k = 0; k < n && seen.size < targets.length; k++, p = p + 1 === n ? 0 : p + 1) {
      const i = owners[p]!;
      if (seen.has(i)) continue;
      seen.add(i);
      if (targets[i]!.downUntil <= now) out.push(i);
    }
    return out;
  }
}
