/**
 * @module Start-up trace points, for `scripts/reload-timing --trace`: with BATON_STARTUP_TRACE=<file> in the
 * environment (workers and new masters inherit it), each process appends one JSON line per step it reaches
 * (pid, role, step, absolute time in ms, the CPU ms this process has used so far: steadier than time on a loaded
 * machine); without it, a step costs one branch. Diagnostics only: no behaviour depends on it.
 */
import { appendFileSync } from 'node:fs';

export const STARTUP_TRACE_ENV = 'BATON_STARTUP_TRACE';

const file = process.env[STARTUP_TRACE_ENV] || null;
let role = 'process';
let first = true;

/** Wall-clock ms with sub-ms precision, comparable between processes on one machine. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Names this process in the lines that follow (master, worker). */
export function traceRole(name: string): void {
  role = name;
}

/** `fields`: extra values for the line; a function when they cost something to gather (called only when tracing). */
export function traceStep(step: string, fields?: Record<string, unknown> | (() => Record<string, unknown>)): void {
  if (file === null) return;
  if (typeof fields === 'function') fields = fields();
  const lines: string[] = [];
  if (first) {
    first = false;
    // Where Node itself spent the time before our first step: process start, then its own bootstrap.
    const t = performance.nodeTiming;
    lines.push(line('process start', performance.timeOrigin, 0));
    lines.push(line('node bootstrap done', performance.timeOrigin + t.bootstrapComplete, null));
  }
  const cpu = process.cpuUsage();
  lines.push(line(step, now(), (cpu.user + cpu.system) / 1000, fields));
  try {
    appendFileSync(file, lines.join(''));
  } catch {
    // a diagnostic must never take a process down
  }
}

function line(step: string, at: number, cpu: number | null, fields?: Record<string, unknown>): string {
  return JSON.stringify({ pid: process.pid, role, step, at: Math.round(at * 100) / 100, ...(cpu === null ? {} : { cpu: Math.round(cpu) }), ...fields }) + '\n';
}
