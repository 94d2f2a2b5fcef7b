/**
 * @module Prometheus text for the admin listener, from what the master knows: its workers' pushed stats,
 * restarts, reloads and upgrades. (Per-status and latency series come with the metrics work.)
 */
import type { WorkerStats } from '../ipc/messages.js';

export interface MetricsInput {
  readonly version: string;
  readonly workers: readonly { readonly generation: number; readonly state: string; readonly stats: WorkerStats }[];
  readonly restarts: number;
  readonly reloads: { readonly ok: number; readonly failed: number };
  readonly upgrades: { readonly ok: number; readonly failed: number };
  readonly startedAt: number;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(m: MetricsInput): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) lines.push(`${name}${labels} ${value}`);
  };
  metric('baton_build_info', 'gauge', 'Version of the running master.', [[`{version="${esc(m.version)}"}`, 1]]);
  metric('baton_start_time_seconds', 'gauge', 'When this master started (unix time).', [['', Math.floor(m.startedAt / 1000)]]);
  const byState = new Map<string, number>();
  for (const w of m.workers) byState.set(`{generation="${w.generation}",state="${w.state}"}`, (byState.get(`{generation="${w.generation}",state="${w.state}"}`) ?? 0) + 1);
  metric('baton_workers', 'gauge', 'Worker processes by generation and state.', [...byState]);
  metric('baton_connections', 'gauge', 'Open client connections over all workers.', [['', m.workers.reduce((n, w) => n + w.stats.connections, 0)]]);
  metric('baton_worker_requests', 'gauge', 'Requests served by the live workers (since each started).', [['', m.workers.reduce((n, w) => n + w.stats.requests, 0)]]);
  metric('baton_worker_restarts_total', 'counter', 'Workers replaced after dying unasked.', [['', m.restarts]]);
  metric('baton_reloads_total', 'counter', 'Reloads by outcome.', [['{outcome="ok"}', m.reloads.ok], ['{outcome="failed"}', m.reloads.failed]]);
  metric('baton_upgrades_total', 'counter', 'Binary upgrades started by this master, by outcome.', [['{outcome="ok"}', m.upgrades.ok], ['{outcome="failed"}', m.upgrades.failed]]);
  return lines.join('\n') + '\n';
}
