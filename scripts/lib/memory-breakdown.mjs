// The reading side of memory-probe.mjs, shared by scripts/memory-attribution and scripts/memory-soak: where the
// probe is, how a process is asked for its record and waited for, and the record laid out as table rows (MiB).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signal, waitFor } from './common.mjs';

/** Load into a process with `--import=${PROBE}` and MEM_PROBE_DIR set (memory-probe.mjs says when it writes). */
export const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'memory-probe.mjs');

/** The record PID wrote into DIR, waited for up to a minute; null if none came. */
export const readProbe = (dir, pid) => waitFor(() => {
  try { return JSON.parse(fs.readFileSync(path.join(dir, `${pid}.json`), 'utf8')); } catch { return null; }
}, 60_000, 100);

/** Ask a baton worker that loaded the probe for its record (SIGWINCH) and wait for it. */
export async function probeWorker(dir, pid) {
  signal(pid, 'SIGWINCH');
  return readProbe(dir, pid);
}

const MiB = (x) => (x === undefined || x === null ? '-' : (x / 1048576).toFixed(1));

/** Rows [name, ...one value per column]; each column is a function from a record to the snapshot to show. */
export function breakdownRows(columns) {
  const rows = [];
  const row = (name, f) => rows.push([name, ...columns.map((pick) => { const s = pick(); return s ? MiB(f(s)) : '-'; })]);
  row('RSS (kernel)', (s) => s.kernel.Rss ?? s.memoryUsage.rss);
  row('  anonymous (heap, stacks, malloc)', (s) => s.kernel.Anonymous);
  row('    malloc, main arena ([heap])', (s) => s.anonymous?.mainArena);
  row("    malloc, threads' arenas", (s) => s.anonymous?.threadArenas);
  row('    other (V8 heap pages, stacks, mmap)', (s) => s.anonymous?.other);
  row('  file-backed (node binary, libraries)', (s) => (s.kernel.Rss ?? 0) - (s.kernel.Anonymous ?? 0));
  row('memoryUsage().heapTotal', (s) => s.memoryUsage.heapTotal);
  row('memoryUsage().heapUsed', (s) => s.memoryUsage.heapUsed);
  row('memoryUsage().external', (s) => s.memoryUsage.external);
  row('memoryUsage().arrayBuffers', (s) => s.memoryUsage.arrayBuffers);
  row('V8 malloced memory', (s) => s.heap.malloced_memory);
  row('V8 code and metadata', (s) => s.code.code_and_metadata_size + s.code.bytecode_and_metadata_size);
  const spaces = new Set(columns.flatMap((pick) => Object.keys(pick()?.spaces ?? {})));
  for (const space of spaces) row(`heap space ${space} (resident / used)`, (s) => s.spaces[space]?.physical);
  for (const space of spaces) row(`heap space ${space} used`, (s) => s.spaces[space]?.used);
  return rows;
}
