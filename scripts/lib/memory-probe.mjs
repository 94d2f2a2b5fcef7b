// Part of scripts/memory-attribution, loaded into a process with `--import` (NODE_OPTIONS): on SIGWINCH (a baton
// worker ignores it otherwise) or at once with MEM_PROBE_NOW=1, writes $MEM_PROBE_DIR/<pid>.json: memoryUsage,
// V8's heap spaces, code statistics, the kernel's view (smaps_rollup), loaded modules; before and after a full GC.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

const dir = process.env.MEM_PROBE_DIR;
const isWorker = process.argv[1]?.endsWith('/worker/main.js');

function kernel() {
  const out = {};
  try {
    for (const m of fs.readFileSync('/proc/self/smaps_rollup', 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]] = Number(m[2]) * 1024;
  } catch { /* no smaps_rollup */ }
  return out;
}

function snapshot() {
  return {
    memoryUsage: process.memoryUsage(),
    heap: v8.getHeapStatistics(),
    spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }])),
    code: v8.getHeapCodeStatistics(),
    kernel: kernel(),
  };
}

function write() {
  const before = snapshot();
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  for (let i = 0; i < 3; i++) gc();
  const after = snapshot();
  const cjs = Object.keys((globalThis.require ?? {}).cache ?? {});
  const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).length;
  fs.writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify({ pid: process.pid, argv: process.argv, node: process.version, builtins, cjs: cjs.length, before, after }));
}

if (dir && (isWorker || process.env.MEM_PROBE_NOW === '1')) {
  if (process.env.MEM_PROBE_NOW === '1') setTimeout(write, Number(process.env.MEM_PROBE_DELAY_MS || 500));
  else process.on('SIGWINCH', write);
}
