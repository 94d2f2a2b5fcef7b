/**
 * @module `workers: auto`: the CPUs this process may really use, the smaller of the CPUs it may run on
 * (os.availableParallelism, i.e. its affinity mask) and its cgroup's CPU quota (a container limited to 1 CPU on a
 * 64-core node gets 1 worker, not 64). The quota is read from cgroup v2 `cpu.max` or v1
 * `cpu.cfs_quota_us`/`cpu.cfs_period_us`, in the process's own cgroup and every ancestor up to the mount.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/** Reads a file below `root` ('/' on a real system, a fixture directory in tests); null when absent. */
export type ReadFile = (file: string) => string | null;

export function fileReader(root = '/'): ReadFile {
  return (file) => {
    try {
      return readFileSync(path.join(root, file), 'utf8');
    } catch {
      return null;
    }
  };
}

interface Mount {
  readonly version: 1 | 2;
  /** The cgroup path this mount shows at its mount point (`/` with a cgroup namespace). */
  readonly root: string;
  readonly point: string;
}

/** cgroup mounts that can hold a CPU quota: the v2 hierarchy, and the v1 hierarchy with the `cpu` controller. */
export function cpuMounts(mountinfo: string): Mount[] {
  const out: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions = ''] = right.split(' ');
    const root = unescape(fields[3] ?? '');
    const point = unescape(fields[4] ?? '');
    if (fstype === 'cgroup2') out.push({ version: 2, root, point });
    else if (fstype === 'cgroup' && superOptions.split(',').includes('cpu')) out.push({ version: 1, root, point });
  }
  return out;
}

/** mountinfo escapes spaces and the like as octal (`\040`). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The process's cgroup path in the v2 hierarchy (`0::/path`) and in the v1 hierarchy holding `cpu`. */
export function ownCgroups(cgroup: string): { v1: string | null; v2: string | null } {
  let v1: string | null = null;
  let v2: string | null = null;
  for (const line of cgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3]!;
    else if (m[2]!.split(',').includes('cpu')) v1 = m[3]!;
  }
  return { v1, v2 };
}

/** CPUs allowed by one directory's limit, or null for none (`max`, `-1`, absent, unreadable). */
export function limitIn(version: 1 | 2, dir: string, read: ReadFile): number | null {
  if (version === 2) {
    const m = /^(\d+|max)\s+(\d+)\s*$/.exec(read(path.posix.join(dir, 'cpu.max')) ?? '');
    if (m === null || m[1] === 'max') return null;
    return ratio(Number(m[1]), Number(m[2]));
  }
  const quota = Number((read(path.posix.join(dir, 'cpu.cfs_quota_us')) ?? '').trim());
  const period = Number((read(path.posix.join(dir, 'cpu.cfs_period_us')) ?? '').trim());
  return quota > 0 ? ratio(quota, period) : null;
}

const ratio = (quota: number, period: number) => (period > 0 ? quota / period : null);

/**
 * The tightest quota from the process's cgroup up to the mount point, or null when nothing limits it. Without a
 * cgroup namespace (a v1 container), /proc/self/cgroup names a path the mount does not show; the mount point
 * itself is then the container's cgroup.
 */
function quotaOnMount(mount: Mount, own: string, read: ReadFile): number | null {
  let rel = '';
  if (mount.root === '/') rel = own;
  else if (own.startsWith(`${mount.root}/`)) rel = own.slice(mount.root.length);
  let best: number | null = null;
  for (let dir = path.posix.join(mount.point, rel); ; dir = path.posix.dirname(dir)) {
    const limit = limitIn(mount.version, dir, read);
    if (limit !== null && (best === null || limit < best)) best = limit;
    if (dir === mount.point || dir === '/' || !dir.startsWith(mount.point)) break;
  }
  return best;
}

/** CPUs the cgroup quota allows (may be fractional), or null when there is none or no cgroup file system. */
export function cpuQuota(read: ReadFile): number | null {
  const mountinfo = read('/proc/self/mountinfo');
  const cgroup = read('/proc/self/cgroup');
  if (mountinfo === null || cgroup === null) return null;
  const own = ownCgroups(cgroup);
  let best: number | null = null;
  for (const mount of cpuMounts(mountinfo)) {
    const path = mount.version === 2 ? own.v2 : own.v1;
    if (path === null) continue;
    const q = quotaOnMount(mount, path, read);
    if (q !== null && (best === null || q < best)) best = q;
  }
  return best;
}

/** min(available CPUs, quota rounded up), at least 1. */
export function autoWorkers(available: number = availableParallelism(), quota: number | null = cpuQuota(fileReader())): number {
  return Math.max(1, quota === null ? available : Math.min(available, Math.ceil(quota)));
}
