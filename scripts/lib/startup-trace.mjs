// scripts/reload-timing --trace: reads the lines baton appends to BATON_STARTUP_TRACE (lib/util/startup-trace.ts)
// and turns those of each timed upgrade or reload into one table: every step, as ms after the signal, median over
// the runs (first and last occurrence when several processes of a role reach it, e.g. each worker), and the median
// CPU ms that the process reaching it had used since it started (a new process's start-up cost, load or not).
import fs from 'node:fs';
import { median } from './bench-cpu.mjs';

/** Wall-clock ms, on the same clock as the trace lines. */
export const wallNow = () => performance.timeOrigin + performance.now();

export function readTrace(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * The steps of one timed operation: lines in [t0, tEnd], named by role (`names` maps a pid to a role name, e.g.
 * old master / new master; other pids keep the role they traced under), each step's first and last time.
 */
export function stepsOf(lines, t0, tEnd, names = {}) {
  const steps = new Map();
  let order = 0;
  for (const l of lines) {
    if (l.at < t0 - 1000 || l.at > tEnd) continue;
    // a process's own start and bootstrap precede the signal only for processes that already ran: skip those
    if (l.at < t0) continue;
    const who = names[l.pid] ?? l.role;
    const key = `${who}: ${l.step}`;
    const ms = l.at - t0;
    const s = steps.get(key);
    if (s) {
      s.first = Math.min(s.first, ms);
      s.last = Math.max(s.last, ms);
      s.count++;
      if (l.cpu !== undefined) s.cpu.push(l.cpu);
    } else steps.set(key, { key, first: ms, last: ms, count: 1, order: order++, cpu: l.cpu === undefined ? [] : [l.cpu] });
  }
  return steps;
}

/** One table over several runs: median of each step's first (and last) time, in time order. */
export function breakdown(runs) {
  const all = new Map();
  for (const steps of runs) {
    for (const s of steps.values()) {
      const a = all.get(s.key) ?? { key: s.key, first: [], last: [], count: [], cpu: [] };
      a.cpu.push(...s.cpu);
      a.first.push(s.first);
      a.last.push(s.last);
      a.count.push(s.count);
      all.set(s.key, a);
    }
  }
  const rows = [...all.values()]
    .map((a) => ({ ...a, mFirst: median(a.first), mLast: median(a.last), n: Math.max(...a.count) }))
    .sort((x, y) => x.mFirst - y.mFirst);
  return rows.map((r) => [r.key, r.first.length, r.mFirst.toFixed(0), r.n > 1 ? r.mLast.toFixed(0) : '', r.cpu.length ? median(r.cpu).toFixed(0) : '']);
}
