// CPU seconds (user+system, from /proc/PID/stat) and RSS of a process tree, for scripts/bench: CPU per 1000
// requests is steadier than req/s on a shared machine, since it does not depend on how much CPU the proxy got.
import fs from 'node:fs';
import { allProcs, descendantsOf } from './common.mjs';

// USER_HZ is 100 on every Linux this runs on (`getconf CLK_TCK`); /proc reports clock ticks
const TICKS = 100;

/** utime+stime+cutime+cstime of one process in seconds (cutime/cstime: children it reaped), or 0 when gone. */
function cpuOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields 14-17 of stat(5), i.e. 11-14 after the command name
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
  } catch {
    return 0;
  }
}

/** The pids of a proxy: its root process and every descendant (master and workers). */
export function treeOf(rootPid) {
  return [rootPid, ...descendantsOf([rootPid], allProcs())];
}

/** CPU seconds of a whole process tree now. */
export function treeCpu(rootPid) {
  return treeOf(rootPid).reduce((n, pid) => n + cpuOf(pid), 0);
}

/** VmRSS in MiB of one process, or null. */
export function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Median of a list of numbers (null for none). */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** "median (min-max)" of per-round CPU/1000 figures. */
export function fmtCpu(xs) {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return '-';
  const m = median(v).toFixed(3);
  return v.length > 1 ? `${m} (${Math.min(...v).toFixed(3)}-${Math.max(...v).toFixed(3)})` : m;
}
