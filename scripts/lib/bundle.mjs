// npm run build, after tsc: the worker entry bundled into one file, dist/bundle/worker/main.js, which the master
// starts its workers from (lib/master/worker-handle.ts; dist/lib/worker/main.js when the bundle is missing or older).
// Why: Node 20 has no compile cache, and its ES module loader pays per file (resolve, URL, open, read, link): a
// worker loads about 70 of our files plus pino and http-proxy. One file halves the CPU a worker spends loading its
// code and leaves about 7 MiB less RSS per worker (scripts/reload-timing --trace, scripts/memory-soak).
// Its path ends in worker/main.js like the unbundled entry (what test hooks and process lists look for); undici's
// files, loaded at run time through createRequire(import.meta.url), resolve from node_modules above it the same.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

await build({
  entryPoints: { 'worker/main': path.join(root, 'dist/lib/worker/main.js') },
  outdir: path.join(root, 'dist/bundle'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Function and class names as in the source (log lines and stacks), whatever the bundle renames.
  keepNames: true,
  sourcemap: true,
  logLevel: 'warning',
  // pino, http-proxy and their dependencies are CommonJS: inside an ES module they need a real require.
  banner: { js: "import { createRequire as __batonRequire } from 'node:module'; const require = __batonRequire(import.meta.url);" },
});
