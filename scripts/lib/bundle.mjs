// npm run build, after tsc: each process entry bundled into one file. dist/bundle/cli.js is what bin/baton loads
// (the CLI and the master), dist/bundle/worker/main.js what the master starts its workers from
// (lib/master/worker-handle.ts); each falls back to the compiled files in dist/lib when missing or older than them.
// Why: Node 20 has no compile cache, and its ES module loader pays per file (resolve, URL, open, read, link): a
// worker loads about 70 of our files plus pino and http-proxy. One file halves the CPU a worker spends loading its
// code (scripts/reload-timing --trace: CPU ms per process until ready).
// The worker's path ends in worker/main.js like the unbundled entry (what test hooks and process lists look for).
// cli.js sits as deep below the package root as dist/lib/version.js, whose URL-relative path to package.json it
// inherits; undici's files, loaded at run time through createRequire(import.meta.url), resolve the same from both.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Node built-ins imported by our ES modules are required instead (`require` from the banner). An ES import of a
 * built-in makes Node build its module namespace, reading every export, getters included: on Node 22 and 24,
 * node:http's WebSocket, CloseEvent and MessageEvent getters then load Node's own undici (with node:tls,
 * node:http2 and node:zlib), about 80 ms of CPU per process on this machine for `import 'node:http'` against
 * 1 ms for require('node:http') (Node 24, median of 6). A require reads nothing it is not asked for.
 */
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin-by-require' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'builtin-by-require' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

await build({
  entryPoints: { 'worker/main': path.join(root, 'dist/lib/worker/main.js'), cli: path.join(root, 'dist/lib/cli/main.js') },
  outdir: path.join(root, 'dist/bundle'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // No keepNames: it wraps every function and class in a __name() call that redefines its `name` at run time, so
  // each closure made per request or per connection (the relay's, the h2c sniffer's) paid an Object.defineProperty.
  // Without it, CPU per proxied keep-alive request fell by about 5% (bench-ab with 2 workers and wrk: 0.942x; one
  // worker under h2load: 0.955x). Names stay those of the source except where the bundle renames a clashing one
  // (Exchange → Exchange2), which only a stack trace shows; the source map has the original.
  // test/integration/worker-lazy.test.ts checks that the bundles call no __name().
  keepNames: false,
  sourcemap: true,
  logLevel: 'warning',
  plugins: [builtinsByRequire],
  // pino, http-proxy and their dependencies are CommonJS: inside an ES module they need a real require.
  banner: { js: "import { createRequire as __batonRequire } from 'node:module'; const require = __batonRequire(import.meta.url);" },
});
