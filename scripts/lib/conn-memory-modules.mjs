// Part of scripts/conn-memory (run with --expose-gc): the heap and RSS a fresh Node process gains importing, in
// order, what a baton worker imports. Prints one JSON line per step.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = process.argv[2];
const require = createRequire(path.join(root, 'package.json'));
const sample = () => {
  for (let i = 0; i < 3; i++) global.gc();
  return { heap: process.memoryUsage().heapUsed, rss: Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024 };
};
const steps = [
  ['node itself (nothing imported)', async () => {}],
  ['node:http, https, http2, net, tls', async () => { for (const m of ['http', 'https', 'http2', 'net', 'tls']) await import(`node:${m}`); }],
  ['undici (the whole package)', async () => import(require.resolve('undici'))],
  ['pino', async () => import(require.resolve('pino'))],
  ['http-proxy', async () => import(require.resolve('http-proxy'))],
  ['baton worker modules (dist/lib/worker/main.js and its imports)', async () => {
    for (const f of ['worker/proxy.js', 'worker/servers.js', 'worker/drain.js', 'log/logger.js', 'metrics/recorder.js', 'ipc/messages.js']) await import(path.join(root, 'dist/lib', f));
  }],
  ['yaml (master only; not imported by workers)', async () => import(require.resolve('yaml'))],
];
let prev = { heap: 0, rss: 0 };
for (const [name, load] of steps) {
  await load();
  const s = sample();
  process.stdout.write(JSON.stringify({ name, heap: s.heap - prev.heap, rss: s.rss - prev.rss }) + '\n');
  prev = s;
}
