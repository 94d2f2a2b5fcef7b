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

/**
 * Resident anonymous memory by where it comes from, from /proc/self/smaps: glibc's main malloc arena (`[heap]`, the
 * brk area), its other arenas (one per thread that mallocs while the others hold theirs: mappings at a 64 MiB
 * boundary, glibc's arena size, with an unreadable `---p` remainder), and the rest (V8's heap pages, stacks, large
 * mallocs served by mmap). A heuristic: an mmap that happens to sit at a 64 MiB boundary counts as an arena.
 */
function anonymous() {
  const out = { mainArena: 0, threadArenas: 0, other: 0 };
  let text;
  try { text = fs.readFileSync('/proc/self/smaps', 'utf8'); } catch { return out; }
  const ARENA = 64 * 1024 * 1024;
  let cur = null;
  let arenaEnd = -1;
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (m) {
      const start = parseInt(m[1], 16);
      const end = parseInt(m[2], 16);
      const anon = m[4] === '0' && (m[5] === '' || m[5] === '[heap]');
      if (!anon) { cur = null; continue; }
      let kind = 'other';
      if (m[5] === '[heap]') kind = 'mainArena';
      else if (start % ARENA === 0 && end - start <= ARENA) { kind = 'threadArenas'; arenaEnd = start + ARENA; }
      else if (start < arenaEnd) kind = 'threadArenas'; // the rest of an arena's 64 MiB, if split
      cur = kind;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r && cur) out[cur] += Number(r[1]) * 1024;
  }
  return out;
}

function snapshot() {
  return {
    memoryUsage: process.memoryUsage(),
    heap: v8.getHeapStatistics(),
    spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }])),
    code: v8.getHeapCodeStatistics(),
    kernel: kernel(),
    anonymous: anonymous(),
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
