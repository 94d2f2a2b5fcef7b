/**
 * @module The worker's counters. Configured once per config snapshot (routes are known by their index in
 * `config.routes`), then incremented on every finished request: a few typed-array increments, no allocation,
 * no label strings. Series keys are built once at `configure()`; `snapshot()` (once a second) turns the arrays
 * into the JSON the master aggregates.
 */
import {
  CONNECTIONS, CONNECTION_STATES, HANDOFFS, HANDOFFS_RECEIVED, HANDOFF_FAILURES, HANDOFF_KINDS, LATENCY_BUCKETS, NONE, PROTOCOLS, QUEUED,
  QUEUE_DEPTH, QUEUE_OUTCOMES, QUEUE_WAIT, RATE_LIMITED, REQUESTS, REQUEST_DURATION, STATUS_CLASSES, UPSTREAM_FAILURES, UPSTREAM_LATENCY,
  WEBSOCKET_TUNNELS, type Protocol, type QueueOutcome,
} from './families.js';

type HandoffKind = (typeof HANDOFF_KINDS)[number];
import type { HistogramData, MetricsSnapshot } from './snapshot.js';
import { labelKey, withLabel } from './text.js';

export interface RouteInfo {
  readonly host: string | null;
  readonly path: string;
  /** A route for one scheme only (`http`, `https`), or null. */
  readonly scheme?: string | null;
  readonly upstream: string | null;
}

/** The route label, as the router and the access log write it: host (or `*`) then path; `http://` first for a route of one scheme. */
export function routeLabel(r: RouteInfo): string {
  return r.scheme == null ? `${r.host ?? '*'}${r.path}` : `${r.scheme}://${r.host ?? '*'}${r.path}`;
}

const CLASSES = STATUS_CLASSES.length;
const BUCKETS = LATENCY_BUCKETS.length + 1;

/** 0 for 1xx ... 4 for 5xx; anything outside 100-599 is clamped into the nearest class. */
export function statusClassIndex(status: number): number {
  const c = (status / 100) | 0;
  return c < 1 ? 0 : c > 5 ? 4 : c - 1;
}

/** Index of the bucket whose upper bound `le` is the first >= `seconds` (the last one is +Inf). */
export function bucketIndex(bounds: readonly number[], seconds: number): number {
  let i = 0;
  while (i < bounds.length && seconds > bounds[i]!) i++;
  return i;
}

interface FailureCount {
  readonly kind: string;
  n: number;
}

function histogramRows(counts: Float64Array, sums: Float64Array, totals: Float64Array, keys: readonly string[]): Record<string, HistogramData> | null {
  let out: Record<string, HistogramData> | null = null;
  for (let s = 0; s < keys.length; s++) {
    if (totals[s] === 0) continue;
    (out ??= {})[keys[s]!] = { buckets: Array.from(counts.subarray(s * BUCKETS, (s + 1) * BUCKETS)), sum: sums[s]! };
  }
  return out;
}

export class Recorder {
  /** Slot 0 is "no route"; route i is slot i + 1. */
  #routeKeys: string[] = [];
  #slotUpstream = Int32Array.of(-1);
  #upstreamKeys: string[] = [];
  /** slot × status class → `route=,upstream=,status_class=` keys. */
  #classKeys: string[] = [];
  #requests = new Float64Array(CLASSES);
  #tunnels = new Float64Array(CLASSES);
  #duration = new Float64Array(BUCKETS);
  #durationSum = new Float64Array(1);
  #durationCount = new Float64Array(1);
  #latency = new Float64Array(0);
  #latencySum = new Float64Array(0);
  #latencyCount = new Float64Array(0);
  #failures: Map<string, FailureCount>[] = [];
  /** Hand-offs given and taken, by kind; failed ones by `kind=,reason=` key. Rare: a drain's worth at most. */
  readonly #handoffs: Record<string, number> = {};
  readonly #handoffsReceived: Record<string, number> = {};
  readonly #handoffFailures: Record<string, number> = {};
  /** Per route (not per slot: no "none"), with its `route=` key. */
  #limited = new Float64Array(0);
  #limitedKeys: string[] = [];
  /** Upstream name → its index in #upstreamKeys (queue counts are by upstream, not route). */
  #upstreamIndex = new Map<string, number>();
  #queueDepth = new Float64Array(0);
  #queued = new Float64Array(0);
  #queueWait = new Float64Array(0);
  #queueWaitSum = new Float64Array(0);
  #queueWaitCount = new Float64Array(0);

  constructor(routes: readonly RouteInfo[] = []) {
    this.configure(routes);
  }

  /** Size the arrays for these routes (indexed like `config.routes`) and reset every count. */
  configure(routes: readonly RouteInfo[]): void {
    const upstreams: string[] = [];
    const slotUpstream = new Int32Array(routes.length + 1).fill(-1);
    const routeKeys = [labelKey([['route', NONE], ['upstream', NONE]])];
    routes.forEach((r, i) => {
      if (r.upstream !== null) {
        let u = upstreams.indexOf(r.upstream);
        if (u === -1) u = upstreams.push(r.upstream) - 1;
        slotUpstream[i + 1] = u;
      }
      routeKeys.push(labelKey([['route', routeLabel(r)], ['upstream', r.upstream ?? NONE]]));
    });
    const slots = routeKeys.length;
    this.#routeKeys = routeKeys;
    this.#slotUpstream = slotUpstream;
    this.#upstreamKeys = upstreams.map((u) => labelKey([['upstream', u]]));
    this.#classKeys = [];
    for (const key of routeKeys) for (const c of STATUS_CLASSES) this.#classKeys.push(withLabel(key, 'status_class', c));
    this.#requests = new Float64Array(slots * CLASSES);
    this.#tunnels = new Float64Array(slots * CLASSES);
    this.#duration = new Float64Array(slots * BUCKETS);
    this.#durationSum = new Float64Array(slots);
    this.#durationCount = new Float64Array(slots);
    this.#latency = new Float64Array(upstreams.length * BUCKETS);
    this.#latencySum = new Float64Array(upstreams.length);
    this.#latencyCount = new Float64Array(upstreams.length);
    this.#failures = upstreams.map(() => new Map());
    this.#limited = new Float64Array(routes.length);
    this.#limitedKeys = routes.map((r) => labelKey([['route', routeLabel(r)]]));
    this.#upstreamIndex = new Map(upstreams.map((u, i) => [u, i]));
    this.#queueDepth = new Float64Array(upstreams.length);
    this.#queued = new Float64Array(upstreams.length * QUEUE_OUTCOMES.length);
    this.#queueWait = new Float64Array(upstreams.length * BUCKETS);
    this.#queueWaitSum = new Float64Array(upstreams.length);
    this.#queueWaitCount = new Float64Array(upstreams.length);
  }

  /** One request refused by its route's rate_limit (it is also counted as a 429 by `request`). */
  rateLimited(route: number): void {
    if (route >= 0 && route < this.#limited.length) this.#limited[route]!++;
  }

  /** An upstream's queue grew or shrank by `delta`. */
  queueDepth(upstream: string, delta: number): void {
    const u = this.#upstreamIndex.get(upstream);
    if (u !== undefined) this.#queueDepth[u]! += delta;
  }

  /** A request that found every target full: how its wait ended, and how long it was (ms; -1: it never waited). */
  queued(upstream: string, outcome: QueueOutcome, waitedMs: number): void {
    const u = this.#upstreamIndex.get(upstream);
    if (u === undefined) return;
    this.#queued[u * QUEUE_OUTCOMES.length + QUEUE_OUTCOMES.indexOf(outcome)]!++;
    if (waitedMs < 0) return;
    const s = waitedMs / 1000;
    this.#queueWait[u * BUCKETS + bucketIndex(LATENCY_BUCKETS, s)]!++;
    this.#queueWaitSum[u]! += s;
    this.#queueWaitCount[u]!++;
  }

  #slot(route: number): number {
    return route >= 0 && route + 1 < this.#routeKeys.length ? route + 1 : 0;
  }

  /**
   * One finished HTTP request. `route`: index in config.routes, or -1 when none matched. `upstreamMs`: from the
   * first upstream dispatch to the response headers, or -1 when no upstream answered.
   */
  request(route: number, status: number, durationMs: number, upstreamMs: number): void {
    const slot = this.#slot(route);
    this.#requests[slot * CLASSES + statusClassIndex(status)]!++;
    const seconds = durationMs / 1000;
    this.#duration[slot * BUCKETS + bucketIndex(LATENCY_BUCKETS, seconds)]!++;
    this.#durationSum[slot]! += seconds;
    this.#durationCount[slot]!++;
    if (upstreamMs < 0) return;
    const u = this.#slotUpstream[slot]!;
    if (u === -1) return;
    const up = upstreamMs / 1000;
    this.#latency[u * BUCKETS + bucketIndex(LATENCY_BUCKETS, up)]!++;
    this.#latencySum[u]! += up;
    this.#latencyCount[u]!++;
  }

  /** One failed upstream attempt, classified by lib/worker/errors.ts (`kind` and its table `code`). */
  upstreamFailure(route: number, kind: string, code: string): void {
    const u = this.#slotUpstream[this.#slot(route)]!;
    if (u === -1) return;
    const byCode = this.#failures[u]!;
    const hit = byCode.get(code);
    if (hit !== undefined) hit.n++;
    else byCode.set(code, { kind, n: 1 });
  }

  /** One WebSocket tunnel closed; `status` is its handshake answer (101, a relayed refusal, 502...). */
  tunnel(route: number, status: number): void {
    this.#tunnels[this.#slot(route) * CLASSES + statusClassIndex(status)]!++;
  }

  /** One connection handed over to another worker. */
  handoff(kind: HandoffKind): void {
    const key = labelKey([['kind', kind]]);
    this.#handoffs[key] = (this.#handoffs[key] ?? 0) + 1;
  }

  /** One connection taken over from another worker. */
  handoffReceived(kind: HandoffKind): void {
    const key = labelKey([['kind', kind]]);
    this.#handoffsReceived[key] = (this.#handoffsReceived[key] ?? 0) + 1;
  }

  /** One hand-off that did not happen; `reason` from lib/ipc/messages.ts HANDOFF_FAILURES. */
  handoffFailure(kind: HandoffKind, reason: string): void {
    const key = labelKey([['kind', kind], ['reason', reason]]);
    this.#handoffFailures[key] = (this.#handoffFailures[key] ?? 0) + 1;
  }

  /** Everything counted so far, and the connections open now. */
  snapshot(connections: Readonly<Record<Protocol, number>>, draining: boolean): MetricsSnapshot {
    const requests: Record<string, number> = {};
    const tunnels: Record<string, number> = {};
    for (let i = 0; i < this.#classKeys.length; i++) {
      if (this.#requests[i] !== 0) requests[this.#classKeys[i]!] = this.#requests[i]!;
      if (this.#tunnels[i] !== 0) tunnels[this.#classKeys[i]!] = this.#tunnels[i]!;
    }
    const failures: Record<string, number> = {};
    this.#failures.forEach((byCode, u) => {
      for (const [code, f] of byCode) failures[`${this.#upstreamKeys[u]!},${labelKey([['kind', f.kind], ['code', code]])}`] = f.n;
    });
    const limited: Record<string, number> = {};
    for (let i = 0; i < this.#limited.length; i++) if (this.#limited[i] !== 0) limited[this.#limitedKeys[i]!] = this.#limited[i]!;
    const queued: Record<string, number> = {};
    const depth: Record<string, number> = {};
    this.#upstreamKeys.forEach((key, u) => {
      depth[key] = this.#queueDepth[u]!;
      QUEUE_OUTCOMES.forEach((outcome, o) => {
        const n = this.#queued[u * QUEUE_OUTCOMES.length + o]!;
        if (n !== 0) queued[withLabel(key, 'outcome', outcome)] = n;
      });
    });
    const state = draining ? CONNECTION_STATES[1] : CONNECTION_STATES[0];
    const open: Record<string, number> = {};
    for (const p of PROTOCOLS) open[labelKey([['protocol', p], ['state', state]])] = connections[p];
    const histograms: Record<string, Record<string, HistogramData>> = {};
    const duration = histogramRows(this.#duration, this.#durationSum, this.#durationCount, this.#routeKeys);
    if (duration !== null) histograms[REQUEST_DURATION.name] = duration;
    const latency = histogramRows(this.#latency, this.#latencySum, this.#latencyCount, this.#upstreamKeys);
    if (latency !== null) histograms[UPSTREAM_LATENCY.name] = latency;
    const waits = histogramRows(this.#queueWait, this.#queueWaitSum, this.#queueWaitCount, this.#upstreamKeys);
    if (waits !== null) histograms[QUEUE_WAIT.name] = waits;
    return {
      counters: {
        [REQUESTS.name]: requests, [UPSTREAM_FAILURES.name]: failures, [WEBSOCKET_TUNNELS.name]: tunnels, [RATE_LIMITED.name]: limited,
        [QUEUED.name]: queued,
        [HANDOFFS.name]: { ...this.#handoffs }, [HANDOFFS_RECEIVED.name]: { ...this.#handoffsReceived }, [HANDOFF_FAILURES.name]: { ...this.#handoffFailures },
      },
      histograms,
      gauges: { [CONNECTIONS.name]: open, [QUEUE_DEPTH.name]: depth },
    };
  }
}

/**
 * The worker process's recorder: a worker serves exactly one config snapshot, so one instance per process,
 * configured by the worker entry when it starts. Until then (and in unit tests of the request path) it counts
 * everything under route "(none)".
 */
export const recorder = new Recorder();
