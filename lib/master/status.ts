/**
 * @module GET /status: what the master knows, as JSON, and whether it serves. It answers 503 while no generation
 * has a ready worker (starting, every worker dead, or drained by WINCH), so probes and health checks see the truth.
 */
import type { Generation } from './generation.js';
import type { MasterState } from './state.js';
import { mergeHealth, isHealthView } from './upstream-health.js';
import { isProcessSample } from '../metrics/process.js';
import type { UpstreamHealth } from '../ipc/messages.js';

export interface StatusInput {
  readonly state: MasterState;
  readonly generations: ReadonlyMap<number, Generation>;
  readonly version: string;
  readonly configFile: string;
  readonly startedAt: number;
  readonly listeners: readonly { listen: string; address: string }[];
  /** When this master is the new binary: the old master's pid. */
  readonly oldMaster: number | null;
  readonly reloads: Readonly<Record<string, number>>;
  readonly lastUpgradeFailure: { readonly reason: string; readonly at: string } | null;
}

export interface StatusReply {
  readonly code: 200 | 503;
  readonly body: Record<string, unknown>;
}

/** The health of the upstreams as the newest serving generation's workers see them. */
export function serving(input: Pick<StatusInput, 'state' | 'generations'>): UpstreamHealth[] {
  const active = input.state.generations.filter((g) => g.status === 'active').at(-1);
  const gen = active ? input.generations.get(active.id) : undefined;
  if (!gen) return [];
  const views = gen.live().filter((w) => w.state === 'ready').map((w) => w.stats.health).filter(isHealthView);
  return mergeHealth(views);
}

export function statusReply(input: StatusInput): StatusReply {
  const s = input.state;
  const workers = [];
  let ready = 0;
  for (const g of input.generations.values()) {
    for (const w of g.live()) {
      if (w.state === 'ready') ready++;
      const rss = isProcessSample(w.stats.process) ? w.stats.process.rss : null;
      workers.push({ pid: w.pid, generation: g.id, state: w.state, connections: w.stats.connections, requests: w.stats.requests, rss });
    }
  }
  const current = s.generations.filter((g) => g.status === 'active').map((g) => g.id).pop() ?? null;
  const body = {
    version: input.version,
    pid: process.pid,
    phase: s.phase,
    serving: ready > 0,
    config: input.configFile,
    uptime: Math.round((Date.now() - input.startedAt) / 1000),
    rss: process.memoryUsage.rss(),
    generation: current,
    generations: s.generations.map((g) => ({ id: g.id, status: g.status, workers: g.config.workers, restarts: input.generations.get(g.id)?.restarts ?? 0 })),
    workers,
    listeners: input.listeners,
    upstreams: serving(input),
    winched: s.winched,
    upgrade: s.upgrade
      ? { oldMaster: process.pid, newMaster: s.upgrade.pid, stage: s.upgrade.stage }
      : s.oldMasterAlive && input.oldMaster !== null
        ? { oldMaster: input.oldMaster, newMaster: process.pid, stage: 'ready' }
        : null,
    lastUpgradeFailure: input.lastUpgradeFailure,
    reloads: input.reloads,
  };
  return { code: ready > 0 ? 200 : 503, body };
}
