/**
 * What a worker loads before it is ready: only what its config uses. node:http2, node:tls, node:zlib, node:crypto,
 * undici and http-proxy come later (at first use: undici for https upstreams and health checks) in a worker whose
 * config has no h2c or TLS listener, no compression and no WebSocket tunnel yet; the start-up trace (BATON_STARTUP_TRACE)
 * records what each worker had loaded when it sent 'ready'.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Daemon, proxyAll, waitFor } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

interface Loaded {
  pid: number;
  role: string;
  step: string;
  builtins?: number;
  optional?: string[];
  packages?: string[];
}

function traced(file: string): Loaded[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Loaded);
}

t.test('a worker proxying HTTP/1.1 to an http upstream loads neither node:http2, node:tls, node:zlib, node:crypto, undici nor http-proxy, before or after it is ready', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up\n'));
  const d = new Daemon(t);
  const trace = path.join(d.dir, 'trace.jsonl');
  await d.start({ body: proxyAll(`http://127.0.0.1:${up.port}`), workers: 1, env: { BATON_STARTUP_TRACE: trace } });
  const [worker] = await waitFor('a worker', 30_000, () => (d.workerPids().length ? d.workerPids() : undefined));
  const lines = await waitFor('the worker traced its warm-up after ready', 30_000, () => {
    const l = traced(trace).filter((x) => x.pid === worker);
    return l.some((x) => x.step === 'warm') ? l : undefined;
  });
  const ready = lines.find((x) => x.step === 'ready sending')!;
  t.same(ready.optional, [], 'no optional built-in before ready');
  t.same(ready.packages, [], 'neither undici nor http-proxy before ready');
  t.ok(ready.builtins! > 0, 'the count of built-ins loaded is traced');
  t.same(lines.find((x) => x.step === 'warm')!.packages, [], 'its pools, made once ready, are its own (no undici)');
  const port = await d.port();
  t.equal((await request(port, '/')).body, 'up\n', 'the first request is proxied');
});

t.test('a worker with an h2c listener loads node:http2 before it is ready', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up\n'));
  const d = new Daemon(t);
  const trace = path.join(d.dir, 'trace.jsonl');
  await d.start({ body: proxyAll(`http://127.0.0.1:${up.port}`, '  - listen: 127.0.0.1:0\n    h2c: true'), workers: 1, env: { BATON_STARTUP_TRACE: trace } });
  const [worker] = await waitFor('a worker', 30_000, () => (d.workerPids().length ? d.workerPids() : undefined));
  const ready = await waitFor('the worker traced its ready', 30_000, () => traced(trace).find((x) => x.pid === worker && x.step === 'ready sending'));
  t.ok(ready.optional!.includes('http2'), 'node:http2 is loaded for the listener');
  t.equal((await request(await d.port(), '/')).body, 'up\n', 'HTTP/1.1 on the h2c port is proxied');
});

/** The text of one bundle of this build (dist/bundle/NAME). */
const bundleText = (name: string): string => fs.readFileSync(fileURLToPath(new URL(`../../bundle/${name}`, import.meta.url)), 'utf8');

t.test('the bundles require Node built-ins rather than import them (an ES import of node:http loads Node 22+ own undici, TLS, HTTP/2 and zlib)', async (t) => {
  for (const name of ['worker/main.js', 'cli.js']) {
    const text = bundleText(name);
    const imports = text.split('\n').filter((l) => /^import\b.*["']node:/.test(l));
    t.same(imports.map((l) => l.replace(/;.*/, '')), ["import { createRequire as __batonRequire } from 'node:module'"], `${name}: only the banner's node:module`);
    t.match(text, /__require\("node:http"\)/, `${name}: node:http by require`);
  }
});

t.test('the bundles define no function names at run time (esbuild keepNames: a defineProperty per closure made per request)', async (t) => {
  // Each with a function of its own: the check would also pass on an empty file.
  for (const [name, own] of [['worker/main.js', 'relayTrailers'], ['cli.js', 'invalidConfig']] as const) {
    const text = bundleText(name);
    t.match(text, new RegExp(`\\bfunction ${own}\\(`), `${name}: the bundle holds ${own}()`);
    t.notMatch(text, /\b__name\(/, `${name}: no __name() calls`);
  }
});
