/**
 * @module The master's metrics: the workers' pushed snapshots aggregated over every worker and generation
 * (lib/metrics/aggregate.ts: counters survive a worker's exit), plus what only the master knows (workers,
 * restarts, reloads, upgrades, build info), rendered as Prometheus text for GET /metrics.
 *
 * Why not prom-client: its multi-process support (AggregatorRegistry) is built on the `cluster` module's
 * messaging, and our workers are plain child processes; it aggregates live workers only, so the counts of an
 * exited worker would vanish (counters going backwards on every reload); and its `inc({labels})` hashes a
 * label object on every call, where the request path here only increments typed arrays.
 */
import {
  BUILD_INFO, CONNECTIONS, CONNECTION_STATES, PROTOCOLS, RELOADS, REQUESTS, REQUEST_DURATION, START_TIME, UPGRADES,
  UPSTREAM_FAILURES, UPSTREAM_LATENCY, WEBSOCKET_TUNNELS, WORKERS, WORKER_RESTARTS, QUEUE_DEPTH, QUEUED, QUEUE_WAIT,
} from '../metrics/families.js';
import { Aggregator } from '../metrics/aggregate.js';
import { Exposition, labelKey } from '../metrics/text.js';
import type { Generation } from './generation.js';
import type { MasterEvent, MasterState } from './state.js';
import type { WorkerHandle } from './worker-handle.js';

export type ReloadResult = 'ok' | 'failed';
export type UpgradeResult = 'ok' | 'failed' | 'rolled_back';

/**
 * Whether `event`, arriving in state `prev`, ends a reload (HUP, POST /reload, or the rollback HUP after
 * WINCH), and how. One count per reload, however many admin requests wait for it.
 */
export function reloadOutcome(prev: MasterState, event: MasterEvent): ReloadResult | null {
  const r = prev.reload;
  if (r === null) return null;
  switch (event.type) {
    case 'configInvalid':
      return r.stage === 'loading' ? 'failed' : null;
    case 'generationReady':
      return r.generation === event.id && prev.generations.some((g) => g.id === event.id && g.status === 'starting') ? 'ok' : null;
    case 'generationFailed':
      return r.generation === event.id ? 'failed' : null;
    case 'winch':
      // Interrupted: the reply says so, and the new generation (if any) drains.
      return prev.phase === 'running' ? 'failed' : null;
    case 'quit':
    case 'stop':
      return prev.phase === 'running' ? 'failed' : null;
    default:
      return null;
  }
}

/** Whether `event`, arriving in state `prev`, settles an upgrade this master started, and how. */
export function upgradeOutcome(prev: MasterState, event: MasterEvent): UpgradeResult | null {
  const u = prev.upgrade;
  if (u === null) return null;
  switch (event.type) {
    case 'newMasterReady':
      return u.pid === event.pid && u.stage === 'spawning' ? 'ok' : null;
    case 'newMasterSpawnFailed':
      return 'failed';
    case 'newMasterExited':
      // Also the end of a new master killed at the upgrade deadline.
      if (u.pid !== event.pid) return null;
      return u.stage === 'spawning' ? 'failed' : 'rolled_back';
    default:
      return null;
  }
}

export class MasterMetrics {
  readonly reloads: Record<ReloadResult, number> = { ok: 0, failed: 0 };
  readonly upgrades: Record<UpgradeResult, number> = { ok: 0, failed: 0, rolled_back: 0 };
  /** Keyed by the worker's handle, not its pid: a pid may come back as a later worker's. */
  readonly #workers = new Aggregator<WorkerHandle>();
  readonly #generations = new Set<Generation>();
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

  /** Called with every event before the reducer sees it: counts reloads and upgrades as they settle. */
  observe(prev: MasterState, event: MasterEvent): void {
    const reload = reloadOutcome(prev, event);
    if (reload !== null) this.reloads[reload]++;
    const upgrade = upgradeOutcome(prev, event);
    if (upgrade !== null) this.upgrades[upgrade]++;
  }

  render(info: { readonly version: string; readonly startedAt: number }): string {
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
    // Every protocol × state, zeros included, so that the series exist before the first connection.
    const open = new Map(totals.gauge(CONNECTIONS.name));
    for (const p of PROTOCOLS) {
      for (const s of CONNECTION_STATES) {
        const key = labelKey([['protocol', p], ['state', s]]);
        if (!open.has(key)) open.set(key, 0);
      }
    }
    out.scalar(CONNECTIONS, open);
    out.scalar(QUEUE_DEPTH, totals.gauge(QUEUE_DEPTH.name));
    out.scalar(QUEUED, totals.counter(QUEUED.name));
    out.histogram(QUEUE_WAIT, totals.histogram(QUEUE_WAIT.name));
    out.scalar(WORKER_RESTARTS, [['', restarts]]);
    out.scalar(RELOADS, Object.entries(this.reloads).map(([k, v]) => [labelKey([['outcome', k]]), v] as const));
    out.scalar(UPGRADES, Object.entries(this.upgrades).map(([k, v]) => [labelKey([['outcome', k]]), v] as const));
    return out.text();
  }
}
