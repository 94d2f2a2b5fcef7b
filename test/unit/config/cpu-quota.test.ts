/** @module workers: auto under cgroup CPU quotas: fixture file systems for cgroup v1, v2, hybrid and none. */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { autoWorkers, cpuMounts, cpuQuota, fileReader, limitIn, ownCgroups } from '../../../lib/config/cpu-quota.js';
import { loadConfig } from '../../../lib/config/load.js';

/** The compiled test runs from dist/test/unit/config; the fixtures are not compiled, so resolve from the repo root. */
const FIXTURES = path.resolve(fileURLToPath(import.meta.url), '../../../../../test/fixtures/cgroup');

const CASES: [name: string, quota: number | null, workersOn64: number, why: string][] = [
  ['v2-one-cpu', 1, 1, 'a container limited to one CPU (cgroup v2 namespace: cpu.max at the mount point)'],
  ['v2-fraction', 1.5, 2, 'a quota of 1.5 CPUs is rounded up'],
  ['v2-unlimited', null, 64, 'cpu.max "max" is no limit'],
  ['v2-service', 2, 2, 'a systemd service with CPUQuota=200% (its own cgroup below the mount)'],
  ['v2-slice-limit', 0.5, 1, 'a parent cgroup (the slice) limits tighter than the service'],
  ['v1-two-cpus', 2, 2, 'a cgroup v1 container (no namespace: the mount shows the container cgroup)'],
  ['v1-unlimited', null, 64, 'cfs_quota_us -1 is no limit'],
  ['hybrid-unlimited', null, 64, 'v2 mounted without the cpu controller beside an unlimited v1 cpu hierarchy'],
  ['no-cgroups', null, 64, 'no /proc/self/mountinfo (not Linux, or /proc hidden)'],
];

for (const [name, quota, workers, why] of CASES) {
  t.test(`${name}: ${why}`, async (t) => {
    const read = fileReader(path.join(FIXTURES, name));
    t.equal(cpuQuota(read), quota, 'quota in CPUs');
    t.equal(autoWorkers(64, cpuQuota(read)), workers, 'workers: auto on a 64-CPU machine');
  });
}

t.test('the quota never raises the count above the CPUs the process may run on, and at least one worker starts', async (t) => {
  t.equal(autoWorkers(2, 8), 2);
  t.equal(autoWorkers(4, 0.01), 1);
  t.equal(autoWorkers(1, null), 1);
});

t.test('mountinfo: the v2 hierarchy and the v1 hierarchy holding cpu are found, optional fields and escapes included', async (t) => {
  const mounts = cpuMounts([
    '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '31 30 0:28 /docker/a /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 master:3 - cgroup cgroup rw,cpu,cpuacct',
    '32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct',
    '40 30 0:37 / /mnt/with\\040space rw,relatime - cgroup2 cgroup2 rw',
    'garbage',
  ].join('\n'));
  t.same(mounts, [
    { version: 1, root: '/docker/a', point: '/sys/fs/cgroup/cpu,cpuacct' },
    { version: 2, root: '/', point: '/mnt/with space' },
  ]);
});

t.test('/proc/self/cgroup: the v2 path and the v1 path of the cpu controller', async (t) => {
  t.same(ownCgroups('12:pids:/a\n4:cpu,cpuacct:/docker/x\n0::/system.slice/baton.service\n'), { v1: '/docker/x', v2: '/system.slice/baton.service' });
  t.same(ownCgroups('0::/\n'), { v1: null, v2: '/' });
  t.same(ownCgroups(''), { v1: null, v2: null });
});

t.test('malformed or zero-period limit files count as no limit rather than as zero CPUs', async (t) => {
  const files: Record<string, string> = { '/a/cpu.max': 'lots 100000\n', '/b/cpu.max': '50000 0\n', '/c/cpu.cfs_quota_us': '50000\n', '/c/cpu.cfs_period_us': '0\n' };
  const read = (f: string) => files[f] ?? null;
  t.equal(limitIn(2, '/a', read), null);
  t.equal(limitIn(2, '/b', read), null);
  t.equal(limitIn(1, '/c', read), null);
  t.equal(limitIn(1, '/missing', read), null);
});

t.test('workers: auto in a config is the quota-aware count of this machine', async (t) => {
  const result = loadConfig(path.join(FIXTURES, '../config/minimal.yaml'));
  t.ok(result.ok);
  if (result.ok) t.equal(result.config.workers, autoWorkers(availableParallelism(), cpuQuota(fileReader())));
});
