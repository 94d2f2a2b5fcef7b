/**
 * @module The master's metrics: the workers' pushed snapshots aggregated over every worker and generation
 * (lib/metrics/aggregate.ts: counters survive a worker's exit), plus what only the master knows (workers,
 * restarts, reloads and upgrades as the reducer settles them, process samples, upstream health, build info),
 * rendered as Prometheus text for GET /metrics.
 *
 * Why not prom-client: its multi-process support (AggregatorRegistry) is built on the `cluster` module's
 * messaging, and our workers are plain child processes; it aggregates live workers only, so the counts of an
 * exited worker would vanish (counters going backwards on every reload); and its `inc({labels})` hashes a
 * label object on every call, where the request path here only increments typed arrays.
 */
import {
  BUILD_INFO, CONNECTIONS, CONNECTION_STATES, HANDOFFS, HANDOFFS_RECEIVED, HANDOFF_FAILURES, HANDOFF_KINDS, PROCESS_ELU, PROCESS_FDS, PROCESS_HEAP, PROCESS_RSS, PROTOCOLS, RATE_LIMITED, RELOADS, REQUESTS,
  REQUEST_DURATION, START_TIME, TARGET_UP, UPGRADES, UPSTREAM_FAILURES, UPSTREAM_LATENCY, WEBSOCKET_TUNNELS, WORKERS, WORKER_RESTARTS,
  QUEUE_DEPTH, QUEUED, QUEUE_WAIT,
} from '../metrics/families.js';
import { Aggregator } from '../metrics/aggregate.js';
import { isProcessSample, ProcessSampler, type ProcessSample } from '../metrics/process.js';
import { Exposition, labelKey } from '../metrics/text.js';
import type { UpstreamHealth } from '../ipc/messages.js';
import type { Generation } from './generation.js';
import type { Effect } from './state.js';
import type { WorkerHandle } from './worker-handle.js';

export type ReloadResult = 'ok' | 'failed';
export type UpgradeResult = 'ok' | 'failed' | 'rolled_back';

export interface RenderInfo {
  readonly version: string;
  readonly startedAt: number;
  /** Upstream targets as the serving workers see them (status.ts `serving`). */
  readonly health?: readonly UpstreamHealth[];
}

type Row = readonly [string, number];

export class MasterMetrics {
  readonly reloads: Record<ReloadResult, number> = { ok: 0, failed: 0 };
  readonly upgrades: Record<UpgradeResult, number> = { ok: 0, failed: 0, rolled_back: 0 };
  /** Keyed by the worker's handle, not its pid: a pid may come back as a later worker's. */
  readonly #workers = new Aggregator<WorkerHandle>();
  readonly #generations = new Set<Generation>();
  readonly #self = new ProcessSampler();
  /** Restarts of generations that have left. */
  #retiredRestarts = 0;

  /** Follow a generation's workers from its start until it has gone. */
  watch(gen: Generation): void {
    this.#generations.add(gen);
    gen.on('workerStats', (w) => this.#workers.update(w, w.stats.metrics));
    // A SIGKILLed worker's counts since its last push (up to one push interval) are lost; see aggregate.ts.
    gen.on('workerExit', (w) => this.#workers.exit(w));
    gen.on('gone', () => {
      if (this.#generations.delete(gen)) this.#retiredRestarts += gen.restarts;
    });
  }

  /** Every effect the reducer asks for passes here: a `settled` one ends a reload or an upgrade, counted once. */
  observe(effect: Effect): void {
    if (effect.type !== 'settled') return;
    if (effect.operation === 'reload' && effect.outcome !== 'rolled_back') this.reloads[effect.outcome]++;
    else if (effect.operation === 'upgrade') this.upgrades[effect.outcome]++;
  }

  render(info: RenderInfo): string {
    const out = new Exposition();
    out.scalar(BUILD_INFO, [[labelKey([['version', info.version], ['node', process.version]]), 1]]);
    out.scalar(START_TIME, [['', Math.floor(info.startedAt / 1000)]]);
    const workers = new Map<string, number>();
    let restarts = this.#retiredRestarts;
    for (const g of this.#generations) {
      restarts += g.restarts;
      for (const w of g.live()) {
        const key = labelKey([['generation', String(g.id)], ['state', w.state]]);
        workers.set(key, (workers.get(key) ?? 0) + 1);
      }
    }
    out.scalar(WORKERS, workers);
    const totals = this.#workers.totals();
    out.scalar(REQUESTS, totals.counter(REQUESTS.name));
    out.histogram(REQUEST_DURATION, totals.histogram(REQUEST_DURATION.name));
    out.histogram(UPSTREAM_LATENCY, totals.histogram(UPSTREAM_LATENCY.name));
    out.scalar(UPSTREAM_FAILURES, totals.counter(UPSTREAM_FAILURES.name));
    out.scalar(WEBSOCKET_TUNNELS, totals.counter(WEBSOCKET_TUNNELS.name));
    out.scalar(RATE_LIMITED, totals.counter(RATE_LIMITED.name));
    // Every protocol × state, zeros included, so that the series exist before the first connection.
    const open = new Map(totals.gauge(CONNECTIONS.name));
    for (const p of PROTOCOLS) {
      for (const s of CONNECTION_STATES) {
        const key = labelKey([['protocol', p], ['state', s]]);
        if (!open.has(key)) open.set(key, 0);
      }
    }
    out.scalar(CONNECTIONS, open);
    // Both kinds, zeros included, so that the series exist before the first drain.
    for (const family of [HANDOFFS, HANDOFFS_RECEIVED]) {
      const rows = new Map(totals.counter(family.name));
      for (const kind of HANDOFF_KINDS) if (!rows.has(labelKey([['kind', kind]]))) rows.set(labelKey([['kind', kind]]), 0);
      out.scalar(family, rows);
    }
    out.scalar(HANDOFF_FAILURES, totals.counter(HANDOFF_FAILURES.name));
    out.scalar(QUEUE_DEPTH, totals.gauge(QUEUE_DEPTH.name));
    out.scalar(QUEUED, totals.counter(QUEUED.name));
    out.histogram(QUEUE_WAIT, totals.histogram(QUEUE_WAIT.name));
    out.scalar(WORKER_RESTARTS, [['', restarts]]);
    out.scalar(RELOADS, Object.entries(this.reloads).map(([k, v]) => [labelKey([['outcome', k]]), v] as const));
    out.scalar(UPGRADES, Object.entries(this.upgrades).map(([k, v]) => [labelKey([['outcome', k]]), v] as const));
    const targets: Row[] = [];
    for (const up of info.health ?? []) {
      for (const t of up.targets) targets.push([labelKey([['upstream', up.name], ['target', t.target]]), t.state === 'up' ? 1 : 0]);
    }
    out.scalar(TARGET_UP, targets);
    this.#renderProcesses(out);
    return out.text();
  }

  /** The master's own sample (taken now) and each live worker's last pushed one. */
  #renderProcesses(out: Exposition): void {
    const samples: Array<[string, ProcessSample]> = [[labelKey([['role', 'master'], ['pid', String(process.pid)]]), this.#self.sample()]];
    for (const g of this.#generations) {
      for (const w of g.live()) {
        const p = w.stats.process;
        if (isProcessSample(p)) samples.push([labelKey([['role', 'worker'], ['pid', String(w.pid)], ['generation', String(g.id)]]), p]);
      }
    }
    out.scalar(PROCESS_RSS, samples.map(([k, s]) => [k, s.rss] as const));
    out.scalar(PROCESS_HEAP, samples.map(([k, s]) => [k, s.heapUsed] as const));
    out.scalar(PROCESS_ELU, samples.map(([k, s]) => [k, s.eventLoopUtilization] as const));
    out.scalar(PROCESS_FDS, samples.flatMap(([k, s]) => (s.openFds === null ? [] : [[k, s.openFds] as const])));
  }
}
